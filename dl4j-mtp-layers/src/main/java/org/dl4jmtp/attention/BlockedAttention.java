package org.dl4jmtp.attention;

import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.RowMixer;
import org.dl4jmtp.layers.rows.StackedMatmul;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.memory.conf.WorkspaceConfiguration;
import org.nd4j.linalg.api.memory.enums.AllocationPolicy;
import org.nd4j.linalg.api.memory.enums.LearningPolicy;
import org.nd4j.linalg.api.memory.enums.SpillPolicy;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastAddOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Arrays;

/**
 * Causal attention on folded heads ([B, nkv, r·T, hd], the r query heads of a kv head contiguous, queries already
 * scaled by 1/√hd) computed one block of query positions at a time: the block's scores against the keys from the
 * first one it may see up to its own last position, their exponentials, then their product with the values. Memory
 * beyond the inputs and outputs is one [r·block, T] score block per kv head (linear in T, no [T, T] array), and only
 * keys on or below the diagonal are touched. Backprop recomputes each block's exponentials, unless the forward pass
 * kept them ({@link #keptElements} within the caller's budget).
 * <p>
 * No softmax op runs. Each query row i subtracts a shift c_i from its scores so that exp cannot overflow, and the
 * normalisation is deferred: with E = exp(S − c), the context is (E·V) / (E·1) and the row sums E·1 come out of the
 * same GEMM as the context, as the last column of E·[V | 1]. The shift enters the score GEMM the same way, as a last
 * column −c_i of the queries against a column of ones on the keys. So a block costs two GEMMs and one exp pass; a
 * softmax op (max, exp and sum passes, then a division) cost about twice the exp pass, a fifth of a long step.
 * <p>
 * The shift is the Cauchy–Schwarz bound c_i = |q_i|·max_j |k_j| ≥ every score of the row, known before the GEMM. A
 * row's largest exponential is then at least exp(−2·c_i), so the bound is used only while every c_i ≤
 * {@link #BOUNDED_SHIFT_LIMIT}: exponentials stay above e^−40 and 1 / (E·1) below e^40, far inside float's range.
 * Beyond it the shift is each row's exact maximum (a reduction and a subtraction more), as in a softmax.
 * <p>
 * Against tiles with an online softmax (FlashAttention-style) this runs a few large ops per query block instead of
 * ~15 small ones per tile: at head_dim 32 a tile's GEMMs are too small to hide the per-op cost.
 */
final class BlockedAttention {

    /** The largest bound shift: beyond it, rows are shifted by their exact maxima (see the class comment). */
    static final double BOUNDED_SHIFT_LIMIT = 20;

    private static final WorkspaceConfiguration SCRATCH = WorkspaceConfiguration.builder()
            .initialSize(0).policyAllocation(AllocationPolicy.OVERALLOCATE).overallocationLimit(0.2)
            .policyLearning(LearningPolicy.FIRST_LOOP).policySpill(SpillPolicy.REALLOCATE).build();
    private static final String ROW_SCOPE = "CausalAttention_queryBlock";

    /** What {@link #backward} reads besides the inputs. */
    static final class Saved {
        final INDArray shifts;        // [B, nkv, r·T] c_i, subtracted from row i's scores
        final INDArray inverseSums;   // [B, nkv, r·T] 1 / Σ_j exp(s_ij − c_i)
        final INDArray[] weights;     // each query block's exp(S − c) [B, nkv, r·bq, L] if kept, else null
        final boolean boundedShifts;  // c is the Cauchy–Schwarz bound (else each row's maximum)

        private Saved(INDArray shifts, INDArray inverseSums, INDArray[] weights, boolean boundedShifts) {
            this.shifts = shifts;
            this.inverseSums = inverseSums;
            this.weights = weights;
            this.boundedShifts = boundedShifts;
        }
    }

    private final int blockSize;
    private final int queriesPerKvHead;
    private final Documents documents;   // null: one document per row

    /**
     * {@code documents}: the packed documents of each row (null: one per row); key blocks no query of the block shares
     * a document with are skipped.
     */
    BlockedAttention(int blockSize, int queriesPerKvHead, Documents documents) {
        this.blockSize = blockSize;
        this.queriesPerKvHead = queriesPerKvHead;
        this.documents = documents;
    }

    /**
     * Writes the context into {@code context} ([B, nkv, r·T, hd]).
     *
     * @param cache where what backprop reads is placed
     * @param keep  whether to keep each query block's exponentials for {@link #backward} (else it recomputes them)
     */
    Saved forward(INDArray queries, INDArray keys, INDArray values, INDArray context, RowMixer.Cache cache,
                  boolean keep) {
        int time = (int) keys.size(2);
        long[] rowShape = {queries.size(0), queries.size(1), queries.size(2)};
        INDArray shifts = cache.createUninitialized(queries.dataType(), rowShape);
        INDArray inverseSums = cache.createUninitialized(queries.dataType(), rowShape);
        boolean bounded = writeBounds(queries, keys, shifts);
        INDArray keysWithOnes = withOnes(keys);
        INDArray valuesWithOnes = withOnes(values);
        INDArray[] kept = keep ? new INDArray[(time + blockSize - 1) / blockSize] : null;
        for (int q0 = 0; q0 < time; q0 += blockSize) {
            int q1 = Math.min(q0 + blockSize, time);
            int k0 = firstKey(q0);
            try (MemoryWorkspace rows = Nd4j.getWorkspaceManager().getAndActivateWorkspace(SCRATCH, ROW_SCOPE)) {
                INDArray q = shiftedRows(queries, bounded ? shifts : null, q0, q1);          // [B, nkv, r·bq, hd+1]
                INDArray into = keep ? cache.createUninitialized(q.dataType(), q.size(0), q.size(1), q.size(2),
                        q1 - k0) : null;
                INDArray s = maskedScores(q, keysWithOnes, q0, q1, k0, into);                // [B, nkv, r·bq, L]
                if (!bounded) {
                    INDArray flat = s.reshape(s.length() / s.size(3), s.size(3));
                    INDArray max = flat.max(true, 1);
                    flat.subiColumnVector(max);
                    INDArray rowShifts = rowBlockView(shifts, q0, q1);
                    rowShifts.assign(max.reshape(rowShifts.shape()));
                }
                Transforms.exp(s, false);
                INDArray out = StackedMatmul.mmul(s, keyBlock(valuesWithOnes, k0, q1), false, false); // [B, nkv, r·bq, hd+1]
                long n = out.length() / out.size(3);
                INDArray flatOut = out.reshape(n, out.size(3));
                INDArray inverse = flatOut.getColumn(out.size(3) - 1, true).rdiv(1.0);   // [n, 1]
                INDArray target = rowBlockView(context, q0, q1);
                target.assign(flatOut.get(NDArrayIndex.all(), NDArrayIndex.interval(0, out.size(3) - 1))
                        .mulColumnVector(inverse).reshape(target.shape()));
                INDArray rowInverseSums = rowBlockView(inverseSums, q0, q1);
                rowInverseSums.assign(inverse.reshape(rowInverseSums.shape()));
                if (kept != null) {
                    kept[q0 / blockSize] = s;
                }
            }
        }
        return new Saved(shifts, inverseSums, kept, bounded);
    }

    /** The elements {@link #forward} keeps for queries [B, nkv, r·T, hd]: every block's [B, nkv, r·bq, L]. */
    long keptElements(INDArray queries, int time) {
        long perRow = queries.size(0) * queries.size(1) * queriesPerKvHead;
        long elements = 0;
        for (int q0 = 0; q0 < time; q0 += blockSize) {
            int q1 = Math.min(q0 + blockSize, time);
            elements += perRow * (q1 - q0) * (q1 - firstKey(q0));
        }
        return elements;
    }

    /**
     * Writes dL/dQ (scaled back by {@code scale}, i.e. w.r.t. the unscaled queries), dL/dK and dL/dV into the three
     * zeroed gradient arrays (shapes of queries, keys, values).
     * <p>
     * With P = E ⊙ z (z the inverse row sums): dV = Pᵀ·dO = Eᵀ·(z ⊙ dO), and the softmax backward
     * dS = P ⊙ (dO·Vᵀ − Σ dO·O) = E ⊙ ([z ⊙ dO | −z ⊙ Σ dO·O]·[V | 1]ᵀ), one GEMM and one product.
     *
     * @param gradContext [B, nkv, r·T, hd] dL/d(context)
     * @param rowDot      [B, nkv, r·T] Σ_d dL/d(context)·context per row (= Σ_s dP·P of the softmax backward)
     */
    void backward(INDArray queries, INDArray keys, INDArray values, Saved saved, INDArray gradContext,
                  INDArray rowDot, double scale, INDArray gradQueries, INDArray gradKeys, INDArray gradValues) {
        int time = (int) keys.size(2);
        int headDim = (int) keys.size(3);
        INDArray keysWithOnes = saved.weights == null ? withOnes(keys) : null;
        INDArray valuesWithOnes = withOnes(values);
        for (int q0 = 0; q0 < time; q0 += blockSize) {
            int q1 = Math.min(q0 + blockSize, time);
            int k0 = firstKey(q0);
            try (MemoryWorkspace rows = Nd4j.getWorkspaceManager().getAndActivateWorkspace(SCRATCH, ROW_SCOPE)) {
                INDArray q = rowBlock(queries, q0, q1);                                       // [B, nkv, r·bq, hd]
                INDArray e;
                if (saved.weights != null) {
                    e = saved.weights[q0 / blockSize];
                } else {
                    e = maskedScores(shiftedRows(queries, saved.shifts, q0, q1), keysWithOnes, q0, q1, k0, null);
                    Transforms.exp(e, false);
                }
                long n = q.length() / headDim;
                INDArray inverse = rowBlock(saved.inverseSums, q0, q1).reshape(n, 1);
                INDArray scaledGrad = rowBlock(gradContext, q0, q1).reshape(n, headDim).muliColumnVector(inverse);
                INDArray gradWithDot = Nd4j.createUninitialized(q.dataType(), n, headDim + 1);
                gradWithDot.get(NDArrayIndex.all(), NDArrayIndex.interval(0, headDim)).assign(scaledGrad);
                gradWithDot.getColumn(headDim, true).assign(rowBlock(rowDot, q0, q1).reshape(n, 1).muli(inverse).negi());
                StackedMatmul.mmulInto(e, scaledGrad.reshape(q.shape()), keyBlockView(gradValues, k0, q1), true, false,
                        1.0);
                INDArray ds = StackedMatmul.mmul(gradWithDot.reshape(q.size(0), q.size(1), q.size(2), headDim + 1),
                        keyBlock(valuesWithOnes, k0, q1), false, true).muli(e);                // [B, nkv, r·bq, L]
                INDArray gradRows = rowBlockView(gradQueries, q0, q1);
                gradRows.assign(StackedMatmul.mmul(ds, keyBlock(keys, k0, q1), false, false).muli(scale)
                        .reshape(gradRows.shape()));
                StackedMatmul.mmulInto(ds, q, keyBlockView(gradKeys, k0, q1), true, false, 1.0);
            }
        }
    }

    /**
     * Writes c_i = |q_i|·max_j |k_j| (over the keys of the same batch row and kv head) into {@code shifts}: no score of
     * row i exceeds it. True if every c_i is within {@link #BOUNDED_SHIFT_LIMIT}.
     */
    private static boolean writeBounds(INDArray queries, INDArray keys, INDArray shifts) {
        long heads = queries.size(0) * queries.size(1);
        INDArray keyNorms = keys.norm2(3).max(2).reshape(heads, 1);                            // [B·nkv, 1]
        INDArray bounds = queries.norm2(3).reshape(heads, queries.size(2)).muliColumnVector(keyNorms);
        shifts.assign(bounds.reshape(shifts.shape()));
        return bounds.maxNumber().doubleValue() <= BOUNDED_SHIFT_LIMIT;
    }

    /** [B, nkv, T, hd] → [B, nkv, T, hd+1] with a last column of ones. */
    private static INDArray withOnes(INDArray rows) {
        return withLastColumn(rows, null, 1);
    }

    /**
     * Positions [q0, q1) of the folded queries with a last column −c_i ({@code shifts} [B, nkv, r·T]), or 0 when
     * {@code shifts} is null: [B, nkv, r·bq, hd+1], c-order.
     */
    private INDArray shiftedRows(INDArray queries, INDArray shifts, int q0, int q1) {
        INDArray out = shifts == null ? withLastColumn(rowBlockView(queries, q0, q1), null, 0)
                : withLastColumn(rowBlockView(queries, q0, q1), rowBlockView(shifts, q0, q1), -1);
        long[] shape = out.shape();                                                           // [B, nkv, r, bq, hd+1]
        return out.reshape(shape[0], shape[1], shape[2] * shape[3], shape[4]);
    }

    /**
     * A c-order copy of {@code rows} [..., d] with one more last column: {@code value}·{@code column} ([...], the
     * leading dimensions of rows), or {@code value} itself when column is null.
     */
    private static INDArray withLastColumn(INDArray rows, INDArray column, double value) {
        long[] shape = rows.shape().clone();
        int last = shape.length - 1;
        shape[last]++;
        INDArray out = Nd4j.createUninitialized(rows.dataType(), shape);
        INDArrayIndex[] index = new INDArrayIndex[shape.length];
        Arrays.fill(index, NDArrayIndex.all());
        index[last] = NDArrayIndex.interval(0, shape[last] - 1);
        out.get(index).assign(rows);
        index[last] = NDArrayIndex.point(shape[last] - 1);
        if (column == null) {
            out.get(index).assign(value);
        } else {
            out.get(index).assign(column).muli(value);
        }
        return out;
    }

    /**
     * The first key position the queries [q0, q0 + block) may see: 0, or with packed documents the start of the first
     * key block that some row's query of the block shares a document with (the diagonal block always qualifies).
     */
    private int firstKey(int q0) {
        int k0 = 0;
        if (documents != null) {
            while (k0 + blockSize <= q0 && documents.disjoint(q0, k0 + blockSize)) {
                k0 += blockSize;
            }
        }
        return k0;
    }

    /**
     * Q·Kᵀ + masks of query rows [q0, q1) over keys [k0, q1): [B, nkv, r·bq, L], the causal mask on the last bq columns
     * and the document mask on all of them; computed in {@code out} when it is given.
     */
    private INDArray maskedScores(INDArray q, INDArray keys, int q0, int q1, int k0, INDArray out) {
        INDArray s = out == null ? StackedMatmul.mmul(q, keyBlock(keys, k0, q1), false, true)   // [B, nkv, r·bq, L]
                : StackedMatmul.mmulInto(q, keyBlock(keys, k0, q1), out, false, true, 0.0);
        int bq = q1 - q0;
        int width = q1 - k0;
        if (bq > 1) {
            // the last bq columns are the queries' own block: mask what lies above its diagonal
            INDArray perHead = s.reshape(s.length() / ((long) bq * width), bq, width)
                    .get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(q0 - k0, width));
            INDArray causal = TriangularMask.fromDiagonal(bq, 1, -AttentionMixer.MASKED_SCORE, s.dataType());
            Nd4j.getExecutioner().exec(new BroadcastAddOp(perHead, causal, perHead, 1, 2));
        }
        if (documents != null) {
            addDocumentMask(s, documents, q0, q1, k0, q1);
        }
        return s;
    }

    /**
     * Adds −{@link AttentionMixer#MASKED_SCORE} to the scores [B, nkv, r·bq, bk] (query positions [q0, q1), key
     * positions [k0, k1)) where query and key are in different documents.
     */
    static void addDocumentMask(INDArray scores, Documents documents, int q0, int q1, int k0, int k1) {
        INDArray bias = documents.crossDocumentBias(q0, q1, k0, k1, AttentionMixer.MASKED_SCORE)
                .castTo(scores.dataType());                                                // [B, bq, bk]
        INDArray perHead = scores.reshape(scores.size(0), scores.length() / (scores.size(0) * (q1 - q0) * (k1 - k0)),
                q1 - q0, k1 - k0);
        Nd4j.getExecutioner().exec(new BroadcastAddOp(perHead, bias, perHead, 0, 2, 3));
    }

    /** A c-order copy of key positions [k0, k1) of [B, nkv, T, hd] (matmul then reads it without strides). */
    private static INDArray keyBlock(INDArray keys, int k0, int k1) {
        return keyBlockView(keys, k0, k1).dup('c');
    }

    private static INDArray keyBlockView(INDArray keys, int k0, int k1) {
        return keys.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(k0, k1), NDArrayIndex.all());
    }

    /** A c-order copy of positions [q0, q1) of every query head, folded as the input ([B, nkv, r·bq, ...]). */
    private INDArray rowBlock(INDArray folded, int q0, int q1) {
        INDArray view = rowBlockView(folded, q0, q1);
        long[] shape = folded.shape().clone();
        shape[2] = (long) queriesPerKvHead * (q1 - q0);
        return view.dup('c').reshape(shape);
    }

    /** Positions [q0, q1) of a folded [B, nkv, r·T(, hd)] array as a view [B, nkv, r, bq(, hd)]. */
    private INDArray rowBlockView(INDArray folded, int q0, int q1) {
        long[] shape = folded.shape();
        long[] split = new long[shape.length + 1];
        split[0] = shape[0];
        split[1] = shape[1];
        split[2] = queriesPerKvHead;
        split[3] = shape[2] / queriesPerKvHead;
        if (shape.length == 4) {
            split[4] = shape[3];
        }
        INDArrayIndex[] index = new INDArrayIndex[split.length];
        for (int i = 0; i < index.length; i++) {
            index[i] = i == 3 ? NDArrayIndex.interval(q0, q1) : NDArrayIndex.all();
        }
        return folded.reshape(split).get(index);
    }
}
