package org.dl4jmtp.layers.rows;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Sums over the rows of a matrix as a GEMM with a row of ones: ND4J M2.1 reduces a non-last axis with strided
 * per-column loops, several times slower than BLAS on these [tokens, features] gradients (bias and norm-weight
 * gradients, the conv taps).
 */
public final class ColumnSums {

    private ColumnSums() {
    }

    /** @param rows [m, k] → [k], the sum of the m rows */
    public static INDArray of(INDArray rows) {
        INDArray ones = Nd4j.ones(rows.dataType(), 1, rows.size(0));
        return Nd4j.gemm(ones, rows, false, false).reshape(rows.size(1));
    }

    /** Sums a [.., k]-shaped product over everything but its last {@code k} values (k = trailing size). */
    public static INDArray ofLeading(INDArray array, long trailing) {
        return of(array.reshape(array.length() / trailing, trailing));
    }
}
