package org.dl4jmtp.model;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/** Validation and conversion of token ids and labels into the graph's [B, 1, T] floating-point layout. */
public final class TokenIds {

    private TokenIds() {
    }

    /** Ids [B, T] (or [B, 1, T]) of any numeric type → [B, 1, T] in {@code type}; every id must lie in [0, V). */
    public static INDArray toGraphInput(INDArray ids, int vocabSize, DataType type) {
        INDArray rows = asRows(ids, "input ids");
        checkRange(rows, vocabSize, false, "token id");
        return rows.castTo(type).reshape('c', rows.size(0), 1, rows.size(1));
    }

    /** Labels [B, T] → [B, 1, T]; every label must be -100 (ignored) or lie in [0, V). */
    public static INDArray toGraphLabels(INDArray labels, int vocabSize, DataType type) {
        INDArray rows = asRows(labels, "labels");
        checkRange(rows, vocabSize, true, "label");
        return rows.castTo(type).reshape('c', rows.size(0), 1, rows.size(1));
    }

    private static INDArray asRows(INDArray a, String what) {
        if (a.rank() == 3 && a.size(1) == 1) {
            return a.reshape('c', a.size(0), a.size(2));
        }
        if (a.rank() != 2) {
            throw new IllegalArgumentException(what + " must be [B, T] (or [B, 1, T]), got shape "
                    + java.util.Arrays.toString(a.shape()));
        }
        return a;
    }

    private static void checkRange(INDArray rows, int vocabSize, boolean allowIgnore, String what) {
        long[] values = rows.castTo(DataType.LONG).dup('c').data().asLong();
        for (int i = 0; i < values.length; i++) {
            long v = values[i];
            boolean ignored = allowIgnore && v == -100;
            if (!ignored && (v < 0 || v >= vocabSize)) {
                throw new IllegalArgumentException(what + " " + v + " at [" + (i / rows.size(1)) + ", " + (i % rows.size(1))
                        + "] is out of range [0, " + vocabSize + ")" + (allowIgnore ? " (or -100 = ignore)" : ""));
            }
        }
    }
}
