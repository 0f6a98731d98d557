package org.dl4jmtp.layers;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.enums.PadMode;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastAddOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.transforms.custom.CumSum;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.Arrays;

/**
 * The documents packed into each row of a batch (docs/model.md, "Packed documents"): the caller's document ids
 * [B, T], a new document wherever the id changes along a row, turned into <em>segment numbers</em> (0 at the start of
 * every row, +1 at each change), so that two positions of a row are in the same document exactly when their segment
 * numbers are equal and positions between them are too.
 *
 * <p>Document ids reach the layers of a graph as the feature mask of {@code input_ids} (docs/model.md): the only
 * per-token array DL4J hands to every layer. {@link #of} returns null when every row holds one document, so that
 * the mixers then take their plain causal path.
 */
public final class Documents {

    private final INDArray segments;   // [B, T] in the activations' type

    private Documents(INDArray segments) {
        this.segments = segments;
    }

    /**
     * @param documentIds [B, T] any numeric type (null: one document per row)
     * @return the documents, or null when no row holds more than one document
     */
    public static Documents of(INDArray documentIds, int batch, int time, DataType type) {
        if (documentIds == null) {
            return null;
        }
        if (documentIds.rank() != 2 || documentIds.size(0) != batch || documentIds.size(1) != time) {
            throw new IllegalArgumentException("document ids must be [batch, T] = [" + batch + ", " + time
                    + "] like the tokens they label, got " + Arrays.toString(documentIds.shape()));
        }
        if (time < 2) {
            return null;
        }
        INDArray ids = documentIds.castTo(DataType.DOUBLE);
        INDArray changes = Nd4j.zeros(type, batch, time);
        changes.get(NDArrayIndex.all(), NDArrayIndex.interval(1, time)).assign(
                ids.get(NDArrayIndex.all(), NDArrayIndex.interval(1, time))
                        .neq(ids.get(NDArrayIndex.all(), NDArrayIndex.interval(0, time - 1))).castTo(type));
        if (changes.sumNumber().doubleValue() == 0) {
            return null;
        }
        INDArray segments = Nd4j.createUninitialized(type, batch, time);
        Nd4j.exec(new CumSum(changes, segments, false, false, 1));
        return new Documents(segments);
    }

    /**
     * Document ids [B, T] of any numeric type → the mask a NemotronV3 graph takes with {@code input_ids}: each row's
     * segment numbers (0, 1, …, exact in float), whatever values and type the ids had. Rejects NaN or infinite ids.
     */
    public static INDArray asMask(INDArray documentIds, DataType type) {
        if (documentIds.rank() != 2) {
            throw new IllegalArgumentException("document ids must be [B, T], got shape "
                    + Arrays.toString(documentIds.shape()));
        }
        if (documentIds.dataType().isFPType() && (documentIds.isInfinite().any() || documentIds.isNaN().any())) {
            throw new IllegalArgumentException("document ids must be finite numbers");
        }
        int batch = (int) documentIds.size(0);
        int time = (int) documentIds.size(1);
        Documents documents = of(documentIds, batch, time, type);
        return documents == null ? Nd4j.zeros(type, batch, time) : documents.segments();
    }

    /** The same documents with their array placed in {@code cache} (for a backprop that reads them later). */
    public Documents keptIn(RowMixer.Cache cache) {
        return new Documents(cache.keep(segments));
    }

    /** [B, T] segment numbers. */
    public INDArray segments() {
        return segments;
    }

    public int batch() {
        return (int) segments.size(0);
    }

    public int time() {
        return (int) segments.size(1);
    }

    /** [B, T]: 1 where position t is in the document of position t − lag, 0 elsewhere (and for t &lt; lag). */
    public INDArray sameAsEarlier(int lag) {
        int time = time();
        INDArray out = Nd4j.zeros(segments.dataType(), batch(), time);
        if (lag < time) {
            out.get(NDArrayIndex.all(), NDArrayIndex.interval(lag, time)).assign(
                    segments.get(NDArrayIndex.all(), NDArrayIndex.interval(lag, time))
                            .eq(segments.get(NDArrayIndex.all(), NDArrayIndex.interval(0, time - lag)))
                            .castTo(segments.dataType()));
        }
        return out;
    }

    /**
     * [B, q1−q0, k1−k0]: 0 where query position q and key position k are in the same document, −{@code value}
     * elsewhere (an additive score mask).
     */
    public INDArray crossDocumentBias(int q0, int q1, int k0, int k1, double value) {
        INDArray queries = segments.get(NDArrayIndex.all(), NDArrayIndex.interval(q0, q1));
        INDArray keys = segments.get(NDArrayIndex.all(), NDArrayIndex.interval(k0, k1));
        return pairwiseEqual(queries, keys).subi(1.0).muli(value);
    }

    /**
     * True when no query position from q0 on shares a document with a key position before k1 ≤ q0, in any row: a
     * tile of attention scores that is entirely masked. Segments grow along a row, so this is seg[k1−1] &lt; seg[q0]
     * in every row (one boolean reduction, no copy to the host).
     */
    public boolean disjoint(int q0, int k1) {
        return segments.getColumn(k1 - 1).lt(segments.getColumn(q0)).all();
    }

    /**
     * The segments cut into chunks of {@code q} positions: [B·Z, q], Z = ceil(T/q), positions past T (the chunked
     * scan's zero padding) in a segment of their own (−1).
     */
    public INDArray chunked(int q) {
        int time = time();
        int chunks = (time + q - 1) / q;
        INDArray padded = Nd4j.valueArrayOf(new long[]{batch(), (long) chunks * q}, -1.0, segments.dataType());
        padded.get(NDArrayIndex.all(), NDArrayIndex.interval(0, time)).assign(segments);
        return padded.reshape((long) batch() * chunks, q);
    }

    /** out[a, i, j] = 1 where left[a, i] = right[a, j], else 0: [A, I] and [A, J] → [A, I, J]. */
    public static INDArray pairwiseEqual(INDArray left, INDArray right) {
        INDArray out = Nd4j.zeros(left.dataType(), left.size(0), left.size(1), right.size(1));
        Nd4j.getExecutioner().exec(new BroadcastAddOp(out, left, out, 0, 1));
        Nd4j.getExecutioner().exec(new BroadcastSubOp(out, right, out, 0, 2));
        return out.eq(0.0).castTo(left.dataType());
    }

    // -----------------------------------------------------------------------------------------------------------
    // SameDiff

    /**
     * The segment numbers of SameDiff's mask placeholder [B, T] (document ids; all ones when the caller gave none,
     * which is one document per row).
     */
    public static SDVariable segments(SameDiff sd, SDVariable documentIds) {
        // each position's predecessor, the first position its own (a symmetric pad repeats the edge): no empty
        // arrays at T = 1, which M2.1's ops reject
        SDVariable padded = sd.nn().pad(documentIds, sd.constant(Nd4j.createFromArray(new long[][]{{0, 0}, {1, 0}})),
                PadMode.SYMMETRIC, 0.0);
        SDVariable previous = sd.stridedSlice(padded, new long[]{0, 0}, new long[]{0, -1}, new long[]{1, 1},
                0b11, 0b01, 0, 0, 0);                                             // padded[:, :-1]
        SDVariable changes = documentIds.neq(previous).castTo(documentIds.dataType());
        return M21Workarounds.cumsumAlongAxis(sd, changes, 1, 2);
    }

    /** [A, I] and [A, J] segments → [A, I, J]: 0 where equal, −value elsewhere. */
    public static SDVariable crossDocumentBias(SameDiff sd, SDVariable left, SDVariable right, double value) {
        SDVariable same = sd.expandDims(left, 2).eq(sd.expandDims(right, 1)).castTo(left.dataType());
        return same.sub(1.0).mul(value);
    }
}
