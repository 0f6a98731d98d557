package org.dl4jmtp.layers;

import org.nd4j.autodiff.samediff.SDIndex;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Small SameDiff building blocks shared by every mixer, the MTP sublayers and the loss. Shapes are dynamic in the
 * batch and time axes: nothing here bakes the sequence length into the graph, so one built graph serves any B and T.
 */
public final class SdMath {

    private SdMath() {
    }

    /** RMSNorm over the last axis: {@code w ⊙ x / sqrt(mean(x²) + eps)}. */
    public static SDVariable rmsNorm(SameDiff sd, SDVariable x, SDVariable weight, double eps, int rank) {
        return M21Workarounds.broadcastMul(sd, normalizeRms(sd, x, eps, rank), weight);
    }

    /** {@code x / sqrt(mean(x²) + eps)} over the last axis, without a weight. */
    public static SDVariable normalizeRms(SameDiff sd, SDVariable x, double eps, int rank) {
        SDVariable meanSquare = M21Workarounds.meanLastAxisKeepDims(x.mul(x), rank);
        return M21Workarounds.broadcastMul(sd, x, sd.math().rsqrt(meanSquare.add(eps)));
    }

    /** SiLU (swish): {@code x·sigmoid(x)}. */
    public static SDVariable silu(SameDiff sd, SDVariable x) {
        return x.mul(sd.nn().sigmoid(x));
    }

    /** relu²: {@code relu(x)²}, the non-gated MLP/expert activation of Nemotron-H. */
    public static SDVariable relu2(SameDiff sd, SDVariable x) {
        SDVariable r = sd.nn().relu(x, 0.0);
        return r.mul(r);
    }

    /** {@code x[..., from:to]} along the last axis of a rank-{@code rank} variable (static bounds). */
    public static SDVariable sliceLastAxis(SameDiff sd, SDVariable x, int rank, long from, long to) {
        long[] begin = new long[rank];
        long[] end = new long[rank];
        long[] strides = new long[rank];
        java.util.Arrays.fill(strides, 1);
        begin[rank - 1] = from;
        end[rank - 1] = to;
        int allButLast = (1 << (rank - 1)) - 1;
        return sd.stridedSlice(x, begin, end, strides, allButLast, allButLast, 0, 0, 0);
    }

    /** The sizes of the given axes of {@code x}, as a LONG vector usable in a dynamic reshape. */
    public static SDVariable dims(SameDiff sd, SDVariable x, int fromAxis, int toAxisExclusive) {
        return sd.shape(x).get(SDIndex.interval(fromAxis, toAxisExclusive));
    }

    /** A constant LONG vector for a dynamic reshape. */
    public static SDVariable constDims(SameDiff sd, long... sizes) {
        return sd.constant(Nd4j.createFromArray(sizes));
    }

    /**
     * Reshape with a shape assembled from dynamic pieces ({@link #dims}) and constants ({@link #constDims}),
     * concatenated in order.
     */
    public static SDVariable reshape(SameDiff sd, SDVariable x, SDVariable... shapePieces) {
        return sd.reshape(x, sd.concat(0, shapePieces));
    }

    /**
     * Constant 0/1 matrix [blocks, blocks·blockSize] with ones at [j, j·blockSize + i]: {@code v · E} repeats each
     * column of v blockSize times. A 2-D mmul and its backprop are BLAS calls, where M2.1's tile_bp is a slow
     * generic loop (issue 6 profile).
     */
    public static SDVariable blockExpansion(SameDiff sd, DataType dataType, int blocks, int blockSize) {
        INDArray expansion = Nd4j.zeros(dataType, blocks, (long) blocks * blockSize);
        for (int j = 0; j < blocks; j++) {
            expansion.get(NDArrayIndex.point(j), NDArrayIndex.interval((long) j * blockSize, (long) (j + 1) * blockSize))
                    .assign(1.0);
        }
        return sd.constant(expansion);
    }

    /** A 0/1 matrix [n, n] with ones where {@code row >= col} (causal), built from a dynamic length n. */
    public static SDVariable causalMask(SameDiff sd, SDVariable length, DataType dataType, boolean strict) {
        SDVariable idx = sd.range(sd.constant(0L), length, sd.constant(1L), DataType.LONG);
        SDVariable rows = sd.expandDims(idx, 1);
        SDVariable cols = sd.expandDims(idx, 0);
        SDVariable mask = strict ? rows.gt(cols) : rows.gte(cols);
        return mask.castTo(dataType);
    }
}
