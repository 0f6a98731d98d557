package org.dl4jmtp.generate;

import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.nd4j.linalg.api.ndarray.INDArray;

/** The cached counterpart of a {@code org.dl4jmtp.layers.Mixer}: the same math, one step of n new tokens at a time. */
interface CachedMixer {

    /** A fresh state (nothing seen yet). */
    LayerState newState();

    /**
     * @param normed [n, H] the normed block input of n consecutive new tokens
     * @param state  this mixer's state, advanced by n tokens
     * @return [n, H]
     */
    INDArray forward(INDArray normed, LayerState state);

    /** The mixer of {@code type} reading its parameters from {@code weights} (already under {@code ...mixer.}). */
    static CachedMixer of(BlockType type, NemotronV3Config config, ModelWeights weights) {
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
