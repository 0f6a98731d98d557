package org.dl4jmtp.layers.rows;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.reduce.floating.SquaredNorm;
import org.nd4j.linalg.api.ops.impl.transforms.custom.SoftMax;
import org.nd4j.linalg.api.shape.Shape;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * The few ND4J operations of the cached path, on row matrices [n, features] (one row per token) in the graph's data
 * type. Each mirrors the SameDiff op of the layer it replaces (same order of operations where it matters).
 */
public final class RowOps {

    private RowOps() {
    }

    /** {@code x·Wᵀ (+ b)} with an nn.Linear weight [out, in] (one gemm, the weight view is not copied); bias may be null. */
    public static INDArray linear(INDArray x, INDArray weight, INDArray bias) {
        INDArray y = Nd4j.gemm(x, weight, false, true);
        return bias == null ? y : y.addiRowVector(bias);
    }

    /** RMSNorm {@code w ⊙ x / sqrt(mean(x²) + eps)} of rows [n, H]: {@link #normalizeInto} times w. */
    public static INDArray rmsNorm(INDArray x, INDArray weight, double eps) {
        return rmsNormInto(x, weight, eps, Nd4j.createUninitialized(x.dataType(), x.shape()));
    }

    /** {@link #rmsNorm} written into {@code out} [n, H] (a view is fine, e.g. half of a concatenation). */
    public static INDArray rmsNormInto(INDArray x, INDArray weight, double eps, INDArray out) {
        return normalizeInto(x, eps, out).muliRowVector(weight);
    }

    /**
     * {@code x / sqrt(mean(x²) + eps)} of each row of x [n, k] into {@code out} (x itself or a view is fine), in three
     * ops: each op costs about as much as the arithmetic on a decoding step's few rows, so the n scales are computed
     * on the host from the rows' squared norms. {@link RowRmsNorm} is the training path's, with no host read.
     */
    public static INDArray normalizeInto(INDArray x, double eps, INDArray out) {
        long n = x.size(0);
        double[] squares = Nd4j.getExecutioner().exec(new SquaredNorm(x, 1)).data().asDouble();
        double[] scales = new double[(int) n];
        for (int i = 0; i < n; i++) {
            scales[i] = 1.0 / Math.sqrt(squares[i] / x.size(1) + eps);
        }
        INDArray invRms = Nd4j.createFromArray(scales).castTo(x.dataType()).reshape(n, 1);
        Nd4j.getExecutioner().exec(new BroadcastMulOp(x, invRms, out, 0));
        return out;
    }

    /** SiLU {@code x·sigmoid(x)}. */
    public static INDArray silu(INDArray x) {
        return x.mul(Transforms.sigmoid(x, true));
    }

    /** relu² {@code relu(x)²}. */
    public static INDArray relu2(INDArray x) {
        INDArray r = Transforms.relu(x, true);
        return r.muli(r);
    }

    /** Softmax over the last axis, in place: libnd4j's max-subtracted softmax, one op. */
    public static INDArray softmaxLastAxis(INDArray scores) {
        return Nd4j.exec(new SoftMax(scores, scores, scores.rank() - 1))[0];
    }

    /** Columns {@code [from, to)} of a matrix, as a view. */
    public static INDArray columns(INDArray x, long from, long to) {
        return x.get(NDArrayIndex.all(), NDArrayIndex.interval(from, to));
    }

    /** Rows {@code [from, to)} of a matrix, as a view. */
    public static INDArray rows(INDArray x, long from, long to) {
        return x.get(NDArrayIndex.interval(from, to), NDArrayIndex.all());
    }

    /** Entries {@code [from, to)} along axis 0 of a rank-3 array, as a view. */
    public static INDArray rows3(INDArray x, long from, long to) {
        return x.get(NDArrayIndex.interval(from, to), NDArrayIndex.all(), NDArrayIndex.all());
    }

    /**
     * Every value in row-major order, read straight from the buffer when the array owns it in that layout; views are
     * copied first (a parameter view's buffer may or may not start at the view's offset in M2.1).
     */
    public static double[] values(INDArray x) {
        boolean ownsBuffer = !x.isView() && x.ordering() == 'c' && Shape.hasDefaultStridesForShape(x)
                && x.data().length() == x.length();
        return (ownsBuffer ? x : x.dup('c')).data().asDouble();
    }
}
