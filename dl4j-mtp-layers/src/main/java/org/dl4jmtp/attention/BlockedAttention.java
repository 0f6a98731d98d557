package org.dl4jmtp.attention;

import org.dl4jmtp.layers.Documents;
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
 * scaled by 1/√hd) computed tile by tile with a running max and sum (online softmax, as FlashAttention-2): only key
 * blocks on or below the diagonal are touched and no [T, T] scores exist. Backprop keeps the per-row logsumexp and
 * recomputes each tile's probabilities from it.
 * <p>
 * Tiles live in a workspace reset per tile, the per-query-block state in one reset per query block, so the memory
 * beyond inputs and outputs is one [r·block, block] tile and O(block·hd) per kv head, whatever T is.
 */
final class BlockedAttention {

    private static final WorkspaceConfiguration SCRATCH = WorkspaceConfiguration.builder()
            .initialSize(0).policyAllocation(AllocationPolicy.OVERALLOCATE).overallocationLimit(0.2)
            .policyLearning(LearningPolicy.FIRST_LOOP).policySpill(SpillPolicy.REALLOCATE).build();
    private static final String ROW_SCOPE = "CausalAttention_queryBlock";
    private static final String TILE_SCOPE = "CausalAttention_tile";

    private final int blockSize;
    private final int queriesPerKvHead;
    private final Documents documents;   // null: one document per row

    /** {@code documents}: the packed documents of each row (null: one per row); tiles no document spans are skipped. */
    BlockedAttention(int blockSize, int queriesPerKvHead, Documents documents) {
        this.blockSize = blockSize;
        this.queriesPerKvHead = queriesPerKvHead;
        this.documents = documents;
    }

    /**
     * Writes the context into {@code context} ([B, nkv, r·T, hd]) and the per-row logsumexp of the scores into
     * {@code logSumExp} ([B, nkv, r·T]).
     */
    void forward(INDArray queries, INDArray keys, INDArray values, INDArray context, INDArray logSumExp) {
        int time = (int) keys.size(2);
        for (int q0 = 0; q0 < time; q0 += blockSize) {
            int q1 = Math.min(q0 + blockSize, time);
            try (MemoryWorkspace rows = Nd4j.getWorkspaceManager().getAndActivateWorkspace(SCRATCH, ROW_SCOPE)) {
                INDArray q = rowBlock(queries, q0, q1);                                       // [B, nkv, r·bq, hd]
                long n = q.length() / q.size(3);
                INDArray max = Nd4j.createUninitialized(q.dataType(), n, 1);
                INDArray sum = Nd4j.createUninitialized(q.dataType(), n, 1);
                INDArray acc = Nd4j.createUninitialized(q.dataType(), q.shape());
                boolean first = true;
                for (int k0 = 0; k0 <= q0; k0 += blockSize) {
                    int k1 = Math.min(k0 + blockSize, time);
                    if (skips(q0, k1)) {
                        continue;
                    }
                    try (MemoryWorkspace tile = Nd4j.getWorkspaceManager().getAndActivateWorkspace(SCRATCH, TILE_SCOPE)) {
                        INDArray scores = scores(q, keys, q0, q1, k0, k1);                    // [n, bk]
                        INDArray tileMax = scores.max(true, 1);
                        INDArray v = keyBlock(values, k0, k1);
                        if (first) {
                            first = false;
                            max.assign(tileMax);
                            INDArray p = Transforms.exp(scores.subiColumnVector(max), false);
                            sum.assign(p.sum(true, 1));
                            acc.assign(Nd4j.matmul(p.reshape(q.size(0), q.size(1), q.size(2), k1 - k0), v));
                        } else {
                            // rescale what earlier key blocks summed to the new running max
                            INDArray newMax = Transforms.max(max, tileMax, true);
                            INDArray correction = Transforms.exp(max.sub(newMax), false);
                            max.assign(newMax);
                            INDArray p = Transforms.exp(scores.subiColumnVector(max), false);
                            sum.muli(correction).addi(p.sum(true, 1));
                            acc.reshape(n, acc.size(3)).muliColumnVector(correction);
                            acc.addi(Nd4j.matmul(p.reshape(q.size(0), q.size(1), q.size(2), k1 - k0), v));
                        }
                    }
                }
                acc.reshape(n, acc.size(3)).diviColumnVector(sum);
                rowBlockView(context, q0, q1).assign(acc.reshape(rowBlockView(context, q0, q1).shape()));
                INDArray lse = max.addi(Transforms.log(sum, false));
                rowBlockView(logSumExp, q0, q1).assign(lse.reshape(rowBlockView(logSumExp, q0, q1).shape()));
            }
        }
    }

    /**
     * Writes dL/dQ (scaled back by {@code scale}, i.e. w.r.t. the unscaled queries), dL/dK and dL/dV into the three
     * zeroed gradient arrays (shapes of queries, keys, values).
     *
     * @param gradContext [B, nkv, r·T, hd] dL/d(context)
     * @param rowDot      [B, nkv, r·T] Σ_d dL/d(context)·context per row (= Σ_s dP·P of the softmax backward)
     */
    void backward(INDArray queries, INDArray keys, INDArray values, INDArray logSumExp, INDArray gradContext,
                  INDArray rowDot, double scale, INDArray gradQueries, INDArray gradKeys, INDArray gradValues) {
        int time = (int) keys.size(2);
        for (int q0 = 0; q0 < time; q0 += blockSize) {
            int q1 = Math.min(q0 + blockSize, time);
            try (MemoryWorkspace rows = Nd4j.getWorkspaceManager().getAndActivateWorkspace(SCRATCH, ROW_SCOPE)) {
                INDArray q = rowBlock(queries, q0, q1);
                INDArray dOut = rowBlock(gradContext, q0, q1);
                long n = q.length() / q.size(3);
                INDArray lse = rowBlock(logSumExp, q0, q1).reshape(n, 1);
                INDArray dot = rowBlock(rowDot, q0, q1).reshape(n, 1);
                INDArray dq = Nd4j.zeros(q.dataType(), q.shape());
                for (int k0 = 0; k0 <= q0; k0 += blockSize) {
                    int k1 = Math.min(k0 + blockSize, time);
                    if (skips(q0, k1)) {
                        continue;
                    }
                    try (MemoryWorkspace tile = Nd4j.getWorkspaceManager().getAndActivateWorkspace(SCRATCH, TILE_SCOPE)) {
                        long[] tileShape = {q.size(0), q.size(1), q.size(2), k1 - k0};
                        INDArray k = keyBlock(keys, k0, k1);
                        INDArray v = keyBlock(values, k0, k1);
                        INDArray p = Transforms.exp(scores(q, keys, q0, q1, k0, k1).subiColumnVector(lse), false);
                        INDArray p4 = p.reshape(tileShape);
                        keyBlockView(gradValues, k0, k1).addi(Nd4j.matmul(p4, dOut, true, false, false));
                        // softmax: dS = P ⊙ (dP − Σ_s dP·P), the row sum being dO·O
                        INDArray dp = Nd4j.matmul(dOut, v, false, true, false);
                        INDArray ds = dp.reshape(p.shape()).subiColumnVector(dot).muli(p).reshape(tileShape);
                        dq.addi(Nd4j.matmul(ds, k));
                        keyBlockView(gradKeys, k0, k1).addi(Nd4j.matmul(ds, q, true, false, false));
                    }
                }
                rowBlockView(gradQueries, q0, q1).assign(dq.muli(scale).reshape(rowBlockView(gradQueries, q0, q1).shape()));
            }
        }
    }

    /**
     * True when no row has a query in [q0, q0 + block) and a key before k1 in the same document: the tile's scores
     * are all masked and its probabilities all 0 (the diagonal tile never is, each query seeing itself).
     */
    private boolean skips(int q0, int k1) {
        return documents != null && k1 <= q0 && documents.disjoint(q0, k1);
    }

    /**
     * Q·Kᵀ of query rows [q0, q1) against keys [k0, k1) as [n, bk], the causal mask added on a diagonal tile and the
     * document mask on every tile of a batch with packed documents.
     */
    private INDArray scores(INDArray q, INDArray keys, int q0, int q1, int k0, int k1) {
        INDArray s = Nd4j.matmul(q, keyBlock(keys, k0, k1), false, true, false);        // [B, nkv, r·bq, bk]
        boolean diagonal = k0 == q0;
        int width = k1 - k0;
        // a diagonal tile is square (query and key blocks start at the same position); one of width 1 has nothing
        // to mask, and the broadcast add of a [1, 1] mask gives wrong sums for a single score per head
        if (diagonal && width > 1) {
            INDArray perHead = s.reshape(s.length() / ((long) width * width), width, width);
            INDArray causal = TriangularMask.fromDiagonal(width, 1, -AttentionMixer.MASKED_SCORE, s.dataType());
            Nd4j.getExecutioner().exec(new BroadcastAddOp(perHead, causal, perHead, 1, 2));
        }
        if (documents != null) {
            addDocumentMask(s, documents, q0, q1, k0, k1);
        }
        return s.reshape(s.length() / width, width);
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
