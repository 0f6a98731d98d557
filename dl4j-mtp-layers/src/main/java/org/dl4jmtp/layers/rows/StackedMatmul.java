package org.dl4jmtp.layers.rows;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;

/**
 * Products of stacks of matrices, {@code a [..., m, k] · b [..., k, n]} over equal leading dimensions (either operand
 * optionally transposed in its last two axes), as {@link Nd4j#matmul} computes them, choosing how to run them.
 * <p>
 * ND4J's oneDNN build is fast on rank-2 products; a rank-3 or rank-4 matmul of the same matrices measured a third to
 * a half of that speed. So for large matrices one rank-2 product per matrix is much faster (2.2–2.5× on attention's
 * [2,048, 64]·[64, 512] products, 1.5× at [128, 512]·[512, 512]), while for small ones the per-call cost (~15 µs) of
 * a product per matrix loses to the batched op. {@link #PER_MATRIX_MIN} is where the two met on a 2-core AVX-512
 * machine (docs/performance.md); below it the product is the single batched op.
 */
public final class StackedMatmul {

    /** Multiply-adds per matrix (m·n·k) from which each matrix gets its own rank-2 product. */
    static final long PER_MATRIX_MIN = 16L << 20;

    private StackedMatmul() {
    }

    /** {@code op(a)·op(b)}, a new c-order array [..., m, n]. */
    public static INDArray mmul(INDArray a, INDArray b, boolean transposeA, boolean transposeB) {
        checkStacks(a, b);
        if (!perMatrix(a, b, transposeA, transposeB)) {
            return Nd4j.matmul(a, b, transposeA, transposeB, false);
        }
        long[] shape = a.shape().clone();
        int rank = shape.length;
        shape[rank - 2] = transposeA ? a.size(rank - 1) : a.size(rank - 2);
        shape[rank - 1] = transposeB ? b.size(rank - 2) : b.size(rank - 1);
        INDArray out = Nd4j.createUninitialized(a.dataType(), shape);
        eachMatrix(a, b, out, transposeA, transposeB, 0.0);
        return out;
    }

    /**
     * {@code out = op(a)·op(b) + beta·out}. {@code out} [..., m, n] may be a view (e.g. rows of a larger array) when its
     * matrices are each contiguous; beta 0 ignores what it held (NaN included).
     */
    public static INDArray mmulInto(INDArray a, INDArray b, INDArray out, boolean transposeA, boolean transposeB,
                                    double beta) {
        checkStacks(a, b);
        checkStacks(a, out);
        if (perMatrix(a, b, transposeA, transposeB) && contiguousMatrices(out)) {
            eachMatrix(a, b, out, transposeA, transposeB, beta);
        } else if (beta == 0) {
            Nd4j.matmul(a, b, out, transposeA, transposeB, false);
        } else {
            INDArray product = Nd4j.matmul(a, b, transposeA, transposeB, false);
            (beta == 1 ? out : out.muli(beta)).addi(product);
        }
        return out;
    }

    private static void checkStacks(INDArray a, INDArray b) {
        if (a.rank() != b.rank() || a.rank() < 2
                || !Arrays.equals(a.shape(), 0, a.rank() - 2, b.shape(), 0, b.rank() - 2)) {
            throw new IllegalArgumentException("Stacked matmul needs two arrays of rank >= 2 with equal leading "
                    + "dimensions, got " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
        }
    }

    private static boolean perMatrix(INDArray a, INDArray b, boolean transposeA, boolean transposeB) {
        int rank = a.rank();
        if (rank < 3) {
            return false;
        }
        long m = transposeA ? a.size(rank - 1) : a.size(rank - 2);
        long k = transposeA ? a.size(rank - 2) : a.size(rank - 1);
        long n = transposeB ? b.size(rank - 2) : b.size(rank - 1);
        return m * n * k >= PER_MATRIX_MIN;
    }

    /** Whether each [m, n] matrix of the stack is one contiguous c-order block (what a rank-2 gemm output needs). */
    private static boolean contiguousMatrices(INDArray out) {
        int rank = out.rank();
        return out.ordering() == 'c' && out.stride(rank - 1) == 1 && out.stride(rank - 2) == out.size(rank - 1);
    }

    private static void eachMatrix(INDArray a, INDArray b, INDArray out, boolean transposeA, boolean transposeB,
                                   double beta) {
        int rank = a.rank();
        long matrices = out.length() / (out.size(rank - 2) * out.size(rank - 1));
        for (long i = 0; i < matrices; i++) {
            Nd4j.gemm(a.tensorAlongDimension(i, rank - 2, rank - 1), b.tensorAlongDimension(i, rank - 2, rank - 1),
                    out.tensorAlongDimension(i, rank - 2, rank - 1), transposeA, transposeB, 1.0, beta);
        }
    }
}
