package org.dl4jmtp.layers.rows;

import org.dl4jmtp.layers.DoublePrecisionSingleThread;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Stacked products, one rank-2 product per matrix or one batched op, against ND4J's batched matmul. */
@ExtendWith(DoublePrecisionSingleThread.class)
class StackedMatmulTest {

    private static final long M = 256;
    private static final long K = 264;
    private static final long N = 252;

    @Test
    void largeMatricesTakeOneProductEachAndMatchTheBatchedOp() {
        assertTrue(M * N * K >= StackedMatmul.PER_MATRIX_MIN, "the shapes must exceed the per-matrix threshold");
        Nd4j.getRandom().setSeed(7);
        for (boolean transposeA : new boolean[]{false, true}) {
            for (boolean transposeB : new boolean[]{false, true}) {
                INDArray a = Nd4j.randn(DataType.DOUBLE, transposeA ? new long[]{2, 3, K, M} : new long[]{2, 3, M, K});
                INDArray b = Nd4j.randn(DataType.DOUBLE, transposeB ? new long[]{2, 3, N, K} : new long[]{2, 3, K, N});
                INDArray expected = Nd4j.matmul(a, b, transposeA, transposeB, false);
                INDArray actual = StackedMatmul.mmul(a, b, transposeA, transposeB);
                assertArrayEquals(new long[]{2, 3, M, N}, actual.shape());
                assertEquals(0, expected.sub(actual).norm2Number().doubleValue() / expected.norm2Number().doubleValue(),
                        1e-12, "transposeA " + transposeA + ", transposeB " + transposeB);
            }
        }
    }

    /** Small matrices take the one batched op; checked against a rank-2 product of each matrix on its own. */
    @Test
    void smallMatricesMatchEachMatrixOnItsOwn() {
        INDArray a = Nd4j.randn(DataType.DOUBLE, 4, 2, 5, 3);
        INDArray b = Nd4j.randn(DataType.DOUBLE, 4, 2, 7, 3);
        INDArray actual = StackedMatmul.mmul(a, b, false, true);
        assertArrayEquals(new long[]{4, 2, 5, 7}, actual.shape());
        for (int i = 0; i < 4; i++) {
            for (int h = 0; h < 2; h++) {
                INDArray expected = a.get(NDArrayIndex.point(i), NDArrayIndex.point(h)).dup()
                        .mmul(b.get(NDArrayIndex.point(i), NDArrayIndex.point(h)).dup().transpose());
                assertEquals(0, expected.sub(actual.get(NDArrayIndex.point(i), NDArrayIndex.point(h)))
                        .norm2Number().doubleValue(), 1e-12, "matrix " + i + ", " + h);
            }
        }
    }

    /**
     * beta 1 accumulates into positions of a larger [B, heads, T, d] array (a view whose matrices are each contiguous),
     * as attention's backprop does with a key block.
     */
    @Test
    void accumulatesIntoARowView() {
        INDArray a = Nd4j.randn(DataType.DOUBLE, 2, 2, M, K);
        INDArray b = Nd4j.randn(DataType.DOUBLE, 2, 2, K, N);
        for (boolean large : new boolean[]{true, false}) {
            long rows = large ? M : 3;
            INDArray aRows = a.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, rows),
                    NDArrayIndex.all()).dup();
            INDArray target = Nd4j.randn(DataType.DOUBLE, 2, 2, rows + 10, N);
            INDArray before = target.dup();
            INDArray view = target.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(4, 4 + rows),
                    NDArrayIndex.all());
            StackedMatmul.mmulInto(aRows, b, view, false, false, 1.0);
            INDArray expected = before.dup();
            expected.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(4, 4 + rows), NDArrayIndex.all())
                    .addi(Nd4j.matmul(aRows, b));
            assertEquals(0, expected.sub(target).norm2Number().doubleValue() / expected.norm2Number().doubleValue(),
                    1e-12, "rows " + rows);
        }
    }

    /** beta 0 overwrites whatever the output held, NaN included; an output without contiguous matrices still works. */
    @Test
    void overwritesWithBetaZeroWhateverTheOutputLayout() {
        INDArray a = Nd4j.randn(DataType.DOUBLE, 2, M, K);
        INDArray b = Nd4j.randn(DataType.DOUBLE, 2, N, K);
        INDArray expected = Nd4j.matmul(a, b, false, true, false);
        INDArray contiguous = Nd4j.valueArrayOf(new long[]{2, M, N}, Double.NaN, DataType.DOUBLE);
        StackedMatmul.mmulInto(a, b, contiguous, false, true, 0.0);
        INDArray fortran = Nd4j.valueArrayOf(new long[]{2, M, N}, Double.NaN, DataType.DOUBLE).dup('f');
        StackedMatmul.mmulInto(a, b, fortran, false, true, 0.0);
        for (INDArray actual : new INDArray[]{contiguous, fortran}) {
            assertEquals(0, expected.sub(actual).norm2Number().doubleValue() / expected.norm2Number().doubleValue(),
                    1e-12);
        }
    }

    @Test
    void refusesUnequalLeadingDimensions() {
        INDArray a = Nd4j.randn(DataType.DOUBLE, 2, M, K);
        INDArray b = Nd4j.randn(DataType.DOUBLE, 3, K, N);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> StackedMatmul.mmul(a, b, false, false));
        assertTrue(e.getMessage().contains("[2, 256, 264]") && e.getMessage().contains("[3, 264, 252]"), e.getMessage());
    }
}
