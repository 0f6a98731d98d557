package org.dl4jmtp.layers.rows;

import org.dl4jmtp.layers.RowMixer;
import org.nd4j.linalg.api.ndarray.INDArray;
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

    /** RMSNorm {@code w ⊙ x / sqrt(mean(x²) + eps)} of rows [n, H]: {@link RowRmsNorm}, the training path's, times w. */
    public static INDArray rmsNorm(INDArray x, INDArray weight, double eps) {
        return RowRmsNorm.of(x, eps, RowMixer.Cache.CURRENT_SCOPE).normalized.muliRowVector(weight);
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

    /** Softmax over the last axis (max-subtracted, as libnd4j's softmax). */
    public static INDArray softmaxLastAxis(INDArray scores) {
        int last = scores.rank() - 1;
        INDArray e = Transforms.exp(scores.sub(scores.max(true, last)), false);
        return e.divi(e.sum(true, last));
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
