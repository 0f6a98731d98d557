package org.dl4jmtp.model;

import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.losses.MtpLossMath;
import org.dl4jmtp.losses.RejectedId;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

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

    /**
     * Labels [B, T] with the document id of every position in a second channel: [B, 2, T] (the layout of a loss head
     * built with {@code documentIdsInLabels}); {@code documentIds} null: one document per row.
     */
    public static INDArray toGraphLabels(INDArray labels, INDArray documentIds, int vocabSize, DataType type) {
        INDArray rows = toGraphLabels(labels, vocabSize, type).reshape(labels.size(0), labels.size(labels.rank() - 1));
        INDArray out = Nd4j.zeros(type, rows.size(0), 2, rows.size(1));
        out.get(NDArrayIndex.all(), NDArrayIndex.point(0), NDArrayIndex.all()).assign(rows);
        if (documentIds != null) {
            out.get(NDArrayIndex.all(), NDArrayIndex.point(1), NDArrayIndex.all()).assign(documentMask(documentIds,
                    rows.size(0), rows.size(1), type));
        }
        return out;
    }

    /**
     * Document ids [B, T] (any numeric type; a new document wherever the id changes along a row) → the graph's mask of
     * {@code input_ids}: each row's segment numbers in {@code type} ({@link Documents#asMask}).
     */
    public static INDArray documentMask(INDArray documentIds, long batch, long time, DataType type) {
        INDArray rows = asRows(documentIds, "document ids");
        if (rows.size(0) != batch || rows.size(1) != time) {
            throw new IllegalArgumentException("document ids must have the shape of the input ids [" + batch + ", "
                    + time + "], got " + java.util.Arrays.toString(documentIds.shape()));
        }
        return Documents.asMask(rows, type);
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
