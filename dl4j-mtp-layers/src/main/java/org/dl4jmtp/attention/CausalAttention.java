package org.dl4jmtp.attention;

import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.RowMixer;
import org.dl4jmtp.layers.rows.StackedMatmul;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastAddOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Map;

/**
 * Causal grouped-query attention (docs/model.md, "Attention"; same math as {@link AttentionMixer}) on token rows with
 * its explicit backprop. The r = nq/nkv query heads of a kv head are contiguous, so queries are folded to
 * [B, nkv, r·T, hd] and every product is one stacked matmul over [B, nkv] ({@link StackedMatmul}), without repeating
 * K and V.
 */
public final class CausalAttention extends RowMixer<CausalAttention.Forward> {

    /** Positions per query/key block of the blocked computation: T ≤ 256 (the small preset) is one block. */
    static final int BLOCK_SIZE = 256;
    /**
     * Up to this T the dense [T, T] computation runs: at the presets' T = 256 and 512 its few large ops beat the blocked
     * path's extra small ones (small preset: 5,700–6,200 against 5,660–5,840 tokens/s blocked, docs/performance.md).
     * Beyond it, blocked: memory linear in T.
     */
    static final int DENSE_UP_TO = 512;
    /**
     * The blocked path keeps its exponentials for backprop while they take at most this many bytes per layer (T =
     * 8,192 at batch 1 with 4 query heads: 0.55 GB in float), and recomputes them beyond, where memory must stay linear
     * in T (T = 32,768 would need 8.6 GB per layer).
     */
    static final long KEPT_PROBABILITIES_BYTES = 1L << 30;

    /** What backprop needs from one forward pass. */
    public static final class Forward {
        final INDArray input;     // [n, H]
        public final int batch;
        final INDArray queries;   // [B, nkv, r·T, hd], scaled by 1/√hd
        final INDArray keys;      // [B, nkv, T, hd]
        final INDArray values;    // [B, nkv, T, hd]
        final INDArray probs;     // [B, nkv, r·T, T] on the dense path, else null (blocked)
        final BlockedAttention.Saved blocked; // blocked path: what its backprop reads, else null
        final INDArray context;   // [n, nq·hd] before o_proj
        final Documents documents; // null: one document per row

        private Forward(INDArray input, int batch, INDArray queries, INDArray keys, INDArray values, INDArray probs,
                        BlockedAttention.Saved blocked, INDArray context, Documents documents) {
            this.blocked = blocked;
            this.input = input;
            this.batch = batch;
            this.queries = queries;
            this.keys = keys;
            this.values = values;
            this.probs = probs;
            this.context = context;
            this.documents = documents;
        }
    }

    private final AttentionConfig config;
    private final int blockSize;
    private final int denseUpTo;
    private final long keptProbabilitiesBytes;

    public CausalAttention(AttentionConfig config, Map<String, INDArray> params, String prefix) {
        this(config, params, prefix, BLOCK_SIZE, DENSE_UP_TO, KEPT_PROBABILITIES_BYTES);
    }

    /**
     * Tests and timing: {@code denseUpTo} = Integer.MAX_VALUE is the dense reference, 0 always blocked;
     * {@code keptProbabilitiesBytes} = 0 makes the blocked path always recompute.
     */
    CausalAttention(AttentionConfig config, Map<String, INDArray> params, String prefix, int blockSize,
                    int denseUpTo, long keptProbabilitiesBytes) {
        super(params, prefix);
        this.config = config;
        this.blockSize = blockSize;
        this.denseUpTo = denseUpTo;
        this.keptProbabilitiesBytes = keptProbabilitiesBytes;
    }

    @Override
    public Result<Forward> forward(INDArray x, int batch, Cache cache) {
        return forward(x, batch, null, cache);
    }

    /** Attention within each document: a query sees the keys at or before it in its own document. */
    @Override
    public Result<Forward> forward(INDArray x, int batch, Documents documents, Cache cache) {
        int time = (int) (x.size(0) / batch);
        documents = documents == null ? null : documents.keptIn(cache);
        int kvHeads = config.getNumKeyValueHeads();
        // queries are kept scaled by 1/√hd: the scale then costs a pass over [n, nq·hd], not over the scores
        INDArray queries = toHeads(linear(x, AttentionMixer.Q_PROJ, AttentionMixer.Q_BIAS).muli(scale()), batch, time,
                kvHeads, cache);                                                              // [B, nkv, r·T, hd]
        INDArray keys = toHeads(linear(x, AttentionMixer.K_PROJ, AttentionMixer.K_BIAS), batch, time, kvHeads, cache);
        INDArray values = toHeads(linear(x, AttentionMixer.V_PROJ, AttentionMixer.V_BIAS), batch, time, kvHeads, cache);

        INDArray probs = null;
        BlockedAttention.Saved saved = null;
        INDArray folded;
        if (time <= denseUpTo) {
            probs = denseProbs(queries, keys, documents, cache);
            folded = StackedMatmul.mmul(probs, values, false, false);
        } else {
            folded = Nd4j.createUninitialized(x.dataType(), queries.shape());
            BlockedAttention blocked = blocked(documents);
            // keep the exponentials for backprop when a training forward pass can afford them
            boolean keep = cache != Cache.CURRENT_SCOPE
                    && blocked.keptElements(queries, time) * queries.dataType().width() <= keptProbabilitiesBytes;
            saved = blocked.forward(queries, keys, values, folded, cache, keep);
        }
        INDArray context = fromHeads(folded, batch, time, config.getNumAttentionHeads(), cache);
        return new Result<>(linear(context, AttentionMixer.O_PROJ, AttentionMixer.O_BIAS),
                new Forward(x, batch, queries, keys, values, probs, saved, context, documents));
    }

    /** The dense softmax(Q·Kᵀ + causal mask (+ document mask)) [B, nkv, r·T, T], in the cache's memory. */
    private static INDArray denseProbs(INDArray queries, INDArray keys, Documents documents, Cache cache) {
        int time = (int) keys.size(2);
        // the scores become the probabilities in place, in the cache's memory (no copy of the largest array)
        INDArray probs = cache.createUninitialized(queries.dataType(), queries.size(0), queries.size(1),
                queries.size(2), time);
        StackedMatmul.mmulInto(queries, keys, probs, false, true, 0.0);                      // [B, nkv, r·T, T]
        INDArray perQueryHead = probs.reshape(probs.length() / ((long) time * time), time, time);
        INDArray causal = TriangularMask.fromDiagonal(time, 1, -AttentionMixer.MASKED_SCORE, queries.dataType());
        Nd4j.getExecutioner().exec(new BroadcastAddOp(perQueryHead, causal, perQueryHead, 1, 2));
        if (documents != null) {
            BlockedAttention.addDocumentMask(probs, documents, 0, time, 0, time);
        }
        Transforms.softmax(probs.reshape(probs.length() / time, time), false);
        return probs;
    }

    private BlockedAttention blocked(Documents documents) {
        return new BlockedAttention(blockSize, config.queriesPerKvHead(), documents);
    }

    @Override
    public INDArray backward(Forward f, INDArray gradOut, Map<String, INDArray> gradients) {
        int batch = f.batch;
        int time = (int) (f.input.size(0) / batch);
        int kvHeads = config.getNumKeyValueHeads();
        INDArray gradContext = linearBackward(gradOut, f.context, AttentionMixer.O_PROJ, AttentionMixer.O_BIAS, gradients);
        INDArray gradFolded = toHeads(gradContext, batch, time, kvHeads, Cache.CURRENT_SCOPE);                    // [B, nkv, r·T, hd]

        INDArray gradQueries;
        INDArray gradKeys;
        INDArray gradValues;
        if (f.probs != null) {
            gradValues = StackedMatmul.mmul(f.probs, gradFolded, true, false);              // [B, nkv, T, hd]
            INDArray gradProbs = StackedMatmul.mmul(gradFolded, f.values, false, true);     // [B, nkv, r·T, T]
            // softmax: dS = P ⊙ (dP − Σ_j dP·P), where Σ_j dP·P = Σ_d dO·O is the cheaper row sum; masked entries
            // have P = 0 and get 0
            INDArray p = f.probs.reshape(f.probs.length() / time, time);
            INDArray dp = gradProbs.reshape(p.shape());
            INDArray gradScores = dp.subiColumnVector(rowDot(gradContext, f.context, batch, time).reshape(p.size(0), 1))
                    .muli(p).reshape(f.probs.shape());
            // scores = Q'·Kᵀ with Q' = Q/√hd
            gradQueries = StackedMatmul.mmul(gradScores, f.keys, false, false).muli(scale()); // [B, nkv, r·T, hd]
            gradKeys = StackedMatmul.mmul(gradScores, f.queries, true, false);              // [B, nkv, T, hd]
        } else {
            gradQueries = Nd4j.zeros(f.queries.dataType(), f.queries.shape());
            gradKeys = Nd4j.zeros(f.keys.dataType(), f.keys.shape());
            gradValues = Nd4j.zeros(f.values.dataType(), f.values.shape());
            blocked(f.documents).backward(f.queries, f.keys, f.values, f.blocked, gradFolded,
                    rowDot(gradContext, f.context, batch, time), scale(), gradQueries, gradKeys, gradValues);
        }

        Cache scratch = Cache.CURRENT_SCOPE;
        INDArray gradInput = linearBackward(fromHeads(gradQueries, batch, time, config.getNumAttentionHeads(), scratch),
                f.input, AttentionMixer.Q_PROJ, AttentionMixer.Q_BIAS, gradients);
        gradInput.addi(linearBackward(fromHeads(gradKeys, batch, time, kvHeads, scratch), f.input,
                AttentionMixer.K_PROJ, AttentionMixer.K_BIAS, gradients));
        gradInput.addi(linearBackward(fromHeads(gradValues, batch, time, kvHeads, scratch), f.input,
                AttentionMixer.V_PROJ, AttentionMixer.V_BIAS, gradients));
        return gradInput;
    }

    /** Σ_d dO·O per (row, query head), folded as the logsumexp: [B, nkv, r·T]. */
    private INDArray rowDot(INDArray gradContext, INDArray context, int batch, int time) {
        int heads = config.getNumAttentionHeads();
        INDArray dot = gradContext.mul(context).reshape((long) batch * time, heads, config.getHeadDim()).sum(2);
        INDArray out = Nd4j.createUninitialized(context.dataType(), batch, heads, time);
        out.assign(dot.reshape(batch, time, heads).permute(0, 2, 1));
        return out.reshape(batch, config.getNumKeyValueHeads(), (long) heads / config.getNumKeyValueHeads() * time);
    }

    private double scale() {
        return 1.0 / Math.sqrt(config.getHeadDim());
    }

    /** Rows [B·T, heads·hd] → [B, nkv, (heads/nkv)·T, hd] (head-major within a kv head), in {@code cache}. */
    private INDArray toHeads(INDArray rows, int batch, int time, int kvHeads, Cache cache) {
        int headDim = config.getHeadDim();
        long heads = rows.size(1) / headDim;
        INDArray out = cache.createUninitialized(rows.dataType(), batch, heads, time, headDim);
        out.assign(rows.reshape(batch, time, heads, headDim).permute(0, 2, 1, 3));
        return out.reshape(batch, kvHeads, heads / kvHeads * time, headDim);
    }

    /** The inverse of {@link #toHeads}: [B, nkv, r·T, hd] → rows [B·T, heads·hd], in {@code cache}. */
    private INDArray fromHeads(INDArray folded, int batch, int time, int heads, Cache cache) {
        int headDim = config.getHeadDim();
        return cache.copy(folded.reshape(batch, heads, time, headDim).permute(0, 2, 1, 3))
                .reshape((long) batch * time, (long) heads * headDim);
    }
}
