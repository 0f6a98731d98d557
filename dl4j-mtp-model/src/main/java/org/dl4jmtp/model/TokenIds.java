package org.dl4jmtp.model;

import org.dl4jmtp.losses.MtpLossMath;
import org.dl4jmtp.losses.RejectedId;
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

    /** One reduction over the ids (cast to integers as before); the offending id is read only when there is one. */
    private static void checkRange(INDArray rows, int vocabSize, boolean allowIgnore, String what) {
        INDArray ids = rows.castTo(DataType.LONG);
        INDArray bad = ids.lt(0L).castTo(DataType.INT).addi(ids.gte((long) vocabSize).castTo(DataType.INT));
        if (allowIgnore) {
            bad.subi(ids.eq((long) MtpLossMath.IGNORE_INDEX).castTo(DataType.INT));
        }
        if (bad.sumNumber().longValue() != 0) {
            RejectedId first = RejectedId.first(bad, ids);
            throw new IllegalArgumentException(what + " " + (long) first.value() + " at " + first.position()
                    + " is out of range [0, " + vocabSize + ")" + (allowIgnore ? " (or -100 = ignore)" : ""));
        }
    }
}
