package org.dl4jmtp.attention;

import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.RowMixer;
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

/**
 * Causal attention on folded heads ([B, nkv, r·T, hd], the r query heads of a kv head contiguous, queries already
 * scaled by 1/√hd) computed one block of query positions at a time: the block's scores against the keys from the
 * first one it may see up to its own last position, a native softmax over them, then their product with the values.
 * Memory beyond the inputs and outputs is one [r·block, T] score block per kv head (linear in T, no [T, T] array),
 * and only keys on or below the diagonal are touched. Backprop recomputes each block's probabilities, unless the
 * forward pass kept them ({@link #keptElements} within the caller's budget): the recomputation (a GEMM, the masks and
 * libnd4j's scalar-exp softmax over every score) is about a third of a long-context training step.
 * <p>
 * Against tiles with an online softmax (FlashAttention-style) this runs a few large ops per query block instead of
 * ~15 small ones per tile: at head_dim 32 a tile's GEMMs are too small to hide the per-op cost.
 */
final class BlockedAttention {

    private static final WorkspaceConfiguration SCRATCH = WorkspaceConfiguration.builder()
            .initialSize(0).policyAllocation(AllocationPolicy.OVERALLOCATE).overallocationLimit(0.2)
            .policyLearning(LearningPolicy.FIRST_LOOP).policySpill(SpillPolicy.REALLOCATE).build();
    private static final String ROW_SCOPE = "CausalAttention_queryBlock";

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
     * @param keepIn where to keep each query block's probabilities for {@link #backward}, or null to keep nothing
     * @return the kept probabilities, one [B, nkv, r·bq, L] array per query block, or null
     */
    INDArray[] forward(INDArray queries, INDArray keys, INDArray values, INDArray context, RowMixer.Cache keepIn) {
        int time = (int) keys.size(2);
        INDArray[] kept = keepIn == null ? null : new INDArray[(time + blockSize - 1) / blockSize];
        for (int q0 = 0; q0 < time; q0 += blockSize) {
            int q1 = Math.min(q0 + blockSize, time);
            int k0 = firstKey(q0);
            try (MemoryWorkspace rows = Nd4j.getWorkspaceManager().getAndActivateWorkspace(SCRATCH, ROW_SCOPE)) {
                INDArray q = rowBlock(queries, q0, q1);                                       // [B, nkv, r·bq, hd]
                INDArray scores = keepIn == null ? null
                        : keepIn.createUninitialized(q.dataType(), q.size(0), q.size(1), q.size(2), q1 - k0);
                INDArray p = probabilities(q, keys, q0, q1, k0, scores);                      // [B, nkv, r·bq, L]
                INDArray out = Nd4j.matmul(p, keyBlock(values, k0, q1));                      // [B, nkv, r·bq, hd]
                rowBlockView(context, q0, q1).assign(out.reshape(rowBlockView(context, q0, q1).shape()));
                if (kept != null) {
                    kept[q0 / blockSize] = p;
                }
            }
        }
        return kept;
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
     *
     * @param gradContext [B, nkv, r·T, hd] dL/d(context)
     * @param rowDot      [B, nkv, r·T] Σ_d dL/d(context)·context per row (= Σ_s dP·P of the softmax backward)
     */
    void backward(INDArray queries, INDArray keys, INDArray values, INDArray[] kept, INDArray gradContext,
                  INDArray rowDot, double scale, INDArray gradQueries, INDArray gradKeys, INDArray gradValues) {
        int time = (int) keys.size(2);
        for (int q0 = 0; q0 < time; q0 += blockSize) {
            int q1 = Math.min(q0 + blockSize, time);
            int k0 = firstKey(q0);
            try (MemoryWorkspace rows = Nd4j.getWorkspaceManager().getAndActivateWorkspace(SCRATCH, ROW_SCOPE)) {
                INDArray q = rowBlock(queries, q0, q1);
                INDArray dOut = rowBlock(gradContext, q0, q1);
                INDArray k = keyBlock(keys, k0, q1);
                INDArray p = kept != null ? kept[q0 / blockSize]
                        : probabilities(q, keys, q0, q1, k0, null);                           // [B, nkv, r·bq, L]
                keyBlockView(gradValues, k0, q1).addi(Nd4j.matmul(p, dOut, true, false, false));
                // softmax: dS = P ⊙ (dP − Σ_s dP·P), the row sum being dO·O
                INDArray dp = Nd4j.matmul(dOut, keyBlock(values, k0, q1), false, true, false);
                long n = p.length() / p.size(3);
                INDArray dot = rowBlock(rowDot, q0, q1).reshape(n, 1);
                INDArray ds = dp.reshape(n, p.size(3)).subiColumnVector(dot).muli(p.reshape(n, p.size(3)))
                        .reshape(p.shape());
                rowBlockView(gradQueries, q0, q1).assign(Nd4j.matmul(ds, k).muli(scale)
                        .reshape(rowBlockView(gradQueries, q0, q1).shape()));
                keyBlockView(gradKeys, k0, q1).addi(Nd4j.matmul(ds, q, true, false, false));
            }
        }
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
     * softmax(Q·Kᵀ + masks) of query rows [q0, q1) over keys [k0, q1): [B, nkv, r·bq, L], the causal mask on the last
     * bq columns and the document mask on all of them; computed in {@code out} when it is given.
     */
    private INDArray probabilities(INDArray q, INDArray keys, int q0, int q1, int k0, INDArray out) {
        INDArray s = out == null ? Nd4j.matmul(q, keyBlock(keys, k0, q1), false, true, false)   // [B, nkv, r·bq, L]
                : Nd4j.matmul(q, keyBlock(keys, k0, q1), out, false, true, false);
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
        Transforms.softmax(s.reshape(s.length() / width, width), false);
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
