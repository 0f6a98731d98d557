package org.dl4jmtp.layers;

import org.dl4jmtp.attention.AttentionConfig;
import org.dl4jmtp.attention.CachedAttention;
import org.dl4jmtp.mamba2.Mamba2Config;
import org.dl4jmtp.mlp.MlpConfig;
import org.dl4jmtp.moe.MoeConfig;
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

    /** The mixer {@code config} describes, reading its parameters from {@code weights} (under {@code ...mixer.}). */
    public static CachedMixer of(MixerConfig config, ModelWeights weights) {
        if (config instanceof Mamba2Config) {
            return new CachedMamba2((Mamba2Config) config, weights);
        } else if (config instanceof AttentionConfig) {
            return new CachedAttention((AttentionConfig) config, weights);
        } else if (config instanceof MlpConfig) {
            return new CachedMlp(weights);
        } else if (config instanceof MoeConfig) {
            return new CachedMoe((MoeConfig) config, weights);
        }
        throw new IllegalArgumentException("Unknown mixer configuration " + config);
    }
}
