package org.dl4jmtp.generate;

import org.dl4jmtp.block.BlockConfig;
import org.dl4jmtp.block.CachedBlock;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.DecoderCache;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.rows.RowOps;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.dl4jmtp.mtp.CachedMtpDepth;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.List;

/**
 * Cached inference for a loaded or trained {@link NemotronV3ForCausalLM}, in plain ND4J, equal to the graph's full
 * forward at every position. The parameters are the graph's live views ({@code HfStateDictAdapter.parameters}), so
 * nothing can drift from the trained graph; everything runs in the graph's data type.
 * <pre>
 * CachedNemotronV3 cached = CachedNemotronV3.of(model);
 * DecoderCache cache = cached.newCache();
 * StepOutput out = cached.step(prompt, cache);                  // prefill (one pass)
 * out = cached.step(new int[]{out.lastGreedyToken()}, cache);   // one token per step
 * </pre>
 * MTP: {@link #mtpStep} runs forward depth d (1-based) on pairs (h^{d-1}_t, x[t+d]) with that depth's own cache
 * ({@link #newMtpCache}). Depths beyond the model's forward depths D reuse the last physical depth (vLLM style: one
 * physical depth applied recursively), each with its own cache.
 */
public final class CachedNemotronV3 {

    private final NemotronV3Config config;
    private final MtpConfig mtp;
    private final ModelWeights weights;
    private final List<CachedBlock> backbone = new ArrayList<>();
    private final List<CachedMtpDepth> physicalDepths = new ArrayList<>();

    private CachedNemotronV3(NemotronV3Config config, MtpConfig mtp, ModelWeights weights) {
        this.config = config;
        this.mtp = mtp;
        this.weights = weights;
        List<BlockType> types = config.getLayerTypes();
        for (int i = 0; i < types.size(); i++) {
            backbone.add(new CachedBlock(BlockConfig.of(types.get(i), config), weights.under("backbone.layers." + i + ".")));
        }
        for (int p = 0; p < (mtp.enabled() ? mtp.numPhysicalDepths() : 0); p++) {
            physicalDepths.add(new CachedMtpDepth(config, mtp.blockTypes(), p, weights));
        }
    }

    /** The cached path of {@code model}, reading the parameters of {@code model.graph()} (views, never copies). */
    public static CachedNemotronV3 of(NemotronV3ForCausalLM model) {
        return new CachedNemotronV3(model.config(), model.mtp(), ModelWeights.of(model.graph()));
    }

    /** The graph's data type, in which every step computes. */
    public DataType dataType() {
        return weights.dataType();
    }

    public NemotronV3Config config() {
        return config;
    }

    /** A fresh cache for the main model (no token seen). */
    public DecoderCache newCache() {
        List<LayerState> states = new ArrayList<>();
        for (CachedBlock block : backbone) {
            states.add(block.newState());
        }
        return new DecoderCache(states);
    }

    /**
     * The main model on n new tokens, continuing {@code cache} (prefill when it is empty); advances the cache by n.
     *
     * @return logits [n, V] and the hidden states after norm_f [n, H]
     */
    public StepOutput step(int[] tokens, DecoderCache cache) {
        INDArray x = embed(tokens);
        for (int i = 0; i < backbone.size(); i++) {
            x = backbone.get(i).forward(x, cache.state(i));
        }
        cache.advanced(tokens.length);
        INDArray hidden = RowOps.rmsNorm(x, weights.vector("backbone.norm_f.weight"), config.getLayerNormEpsilon());
        return new StepOutput(logits(hidden), hidden);
    }

    /** Forward MTP depths D of the model (0 without MTP); drafting may go further (see {@link #physicalDepthOf}). */
    public int mtpDepths() {
        return mtp.enabled() ? mtp.getNumLayers() : 0;
    }

    /**
     * The physical depth whose weights forward depth d uses: 0 with a repeated layer, else d−1, and the last physical
     * depth for every d beyond D.
     */
    public int physicalDepthOf(int depth) {
        if (physicalDepths.isEmpty()) {
            throw new IllegalStateException("The model has no MTP depths");
        }
        if (depth < 1) {
            throw new IllegalArgumentException("MTP depth must be >= 1, got " + depth);
        }
        return mtp.isUseRepeatedLayer() ? 0 : Math.min(depth, physicalDepths.size()) - 1;
    }

    /** A fresh cache for forward depth d (its own attention KV cache / Mamba state). */
    public DecoderCache newMtpCache(int depth) {
        return physicalDepths.get(physicalDepthOf(depth)).newCache();
    }

    /**
     * MTP forward depth d on n consecutive positions t..t+n−1 continuing {@code cache} (whose length must be t).
     *
     * @param previousHidden [n, H] h^{d−1} at those positions (h⁰ = the main model's hidden after norm_f)
     * @param tokens         x[t+d] .. x[t+n−1+d], the tokens depth d embeds
     * @return h^d [n, H] and its logits [n, V] (shared embedding and lm_head); row j predicts x[t+j+d+1]
     */
    public StepOutput mtpStep(int depth, INDArray previousHidden, int[] tokens, DecoderCache cache) {
        if (previousHidden.size(0) != tokens.length) {
            throw new IllegalArgumentException(previousHidden.size(0) + " hidden rows for " + tokens.length + " tokens");
        }
        INDArray hidden = physicalDepths.get(physicalDepthOf(depth)).forward(previousHidden, embed(tokens), cache);
        return new StepOutput(logits(hidden), hidden);
    }

    private INDArray embed(int[] tokens) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("A step needs at least one token");
        }
        for (int t : tokens) {
            if (t < 0 || t >= config.getVocabSize()) {
                throw new IllegalArgumentException("Token id " + t + " is out of range [0, " + config.getVocabSize() + ")");
            }
        }
        return weights.get("backbone.embeddings.weight").getRows(tokens);
    }

    private INDArray logits(INDArray hidden) {
        return RowOps.linear(hidden, weights.get("lm_head.weight"), null);
    }
}
