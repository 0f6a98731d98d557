package org.dl4jmtp.layers;

import org.dl4jmtp.attention.CachedAttention;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.mamba2.CachedMamba2;
import org.dl4jmtp.mlp.CachedMlp;
import org.dl4jmtp.moe.CachedMoe;
import org.nd4j.linalg.api.ndarray.INDArray;

/** The cached counterpart of a {@code org.dl4jmtp.layers.Mixer}: the same math, one step of n new tokens at a time. */
public interface CachedMixer {

    /** A fresh state (nothing seen yet). */
    public LayerState newState();

    /**
     * @param normed [n, H] the normed block input of n consecutive new tokens
     * @param state  this mixer's state, advanced by n tokens
     * @return [n, H]
     */
    public INDArray forward(INDArray normed, LayerState state);

    /** The mixer of {@code type} reading its parameters from {@code weights} (already under {@code ...mixer.}). */
    public static CachedMixer of(BlockType type, NemotronV3Config config, ModelWeights weights) {
        switch (type) {
            case MAMBA:
                return new CachedMamba2(config, weights);
            case ATTENTION:
                return new CachedAttention(config, weights);
            case MLP:
                return new CachedMlp(weights);
            case MOE:
                return new CachedMoe(config, weights);
            default:
                throw new IllegalArgumentException("Unknown block type " + type);
        }
    }
}
