package org.dl4jmtp.attention;

import org.dl4jmtp.layers.CachedMixer;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;

/**
 * Causal GQA attention without positional encoding (docs/model.md, "Attention") over a KV cache: the n new queries
 * attend to every
 * cached position and, causally, to each other. Query head i reads kv head i / (nq/nkv).
 */
public final class CachedAttention implements CachedMixer {

    /** Added to masked scores, as the graph does: softmax then gives exactly 0. */
    private static final double MASKED_SCORE = -1e9;

    private final AttentionConfig config;
    private final ModelWeights weights;

    public CachedAttention(AttentionConfig config, ModelWeights weights) {
        this.config = config;
        this.weights = weights;
    }

    @Override
    public LayerState newState() {
        return new KvCache(config.kvWidth(), weights.dataType());
    }

    @Override
    public INDArray forward(INDArray normed, LayerState state) {
        KvCache cache = (KvCache) state;
        int n = (int) normed.size(0);
        int nkv = config.getNumKeyValueHeads();
        int perKv = config.queriesPerKvHead();
        int hd = config.getHeadDim();

        INDArray q = project(normed, "q_proj", null);
        int start = cache.length();
        INDArray[] newRows = cache.appendRows(n);                  // k and v are projected straight into the cache
        project(normed, "k_proj", newRows[0]);
        project(normed, "v_proj", newRows[1]);
        int total = cache.length();

        // [nkv, perKv·n, hd] queries grouped by their kv head (one token: already in that order); keys and values
        // [nkv, total, hd]
        INDArray queries = n == 1 ? q.reshape(nkv, perKv, hd)
                : q.reshape(n, nkv, perKv, hd).permute(1, 2, 0, 3).dup('c').reshape(nkv, (long) perKv * n, hd);
        INDArray keys = cache.keys().reshape(total, nkv, hd).permute(1, 2, 0);                  // [nkv, hd, total]
        INDArray values = cache.values().reshape(total, nkv, hd).permute(1, 0, 2);              // [nkv, total, hd]

        INDArray scores = Nd4j.matmul(queries, keys).muli(1.0 / Math.sqrt(hd));               // [nkv, perKv·n, total]
        if (n > 1) {
            scores = scores.reshape(nkv, perKv, n, total).add(causalMask(n, start, total, scores))
                    .reshape(nkv, (long) perKv * n, total);
        }
        INDArray context = Nd4j.matmul(RowOps.softmaxLastAxis(scores), values);                  // [nkv, perKv·n, hd]
        context = n == 1 ? context.reshape(1, config.queryWidth())
                : context.reshape(nkv, perKv, n, hd).permute(2, 0, 1, 3).dup('c').reshape(n, config.queryWidth());
        return project(context, "o_proj", null);
    }

    /** x·Wᵀ (+ b) of projection {@code name}, into {@code out} when it is given. */
    private INDArray project(INDArray x, String name, INDArray out) {
        INDArray weight = weights.get(name + ".weight");
        INDArray y = out == null ? Nd4j.gemm(x, weight, false, true) : Nd4j.gemm(x, weight, out, false, true, 1.0, 0.0);
        INDArray bias = weights.optionalVector(name + ".bias");
        return bias == null ? y : y.addiRowVector(bias);
    }

    /** [n, total]: 0 where new token r (at position start + r) may see position s ≤ start + r, else a large negative. */
    private static INDArray causalMask(int n, int start, int total, INDArray like) {
        double[] mask = new double[n * total];
        for (int r = 0; r < n; r++) {
            Arrays.fill(mask, r * total + start + r + 1, (r + 1) * total, MASKED_SCORE);
        }
        return Nd4j.createFromArray(mask).castTo(like.dataType()).reshape(n, total);
    }
}
