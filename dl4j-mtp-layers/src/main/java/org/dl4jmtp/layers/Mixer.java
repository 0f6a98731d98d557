package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.attention.AttentionConfig;
import org.dl4jmtp.attention.AttentionMixer;
import org.dl4jmtp.mamba2.Mamba2Config;
import org.dl4jmtp.mlp.MlpConfig;
import org.dl4jmtp.moe.MoeConfig;
import org.dl4jmtp.mamba2.Mamba2Mixer;
import org.dl4jmtp.mlp.MlpMixer;
import org.dl4jmtp.moe.MoeMixer;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/**
 * The token mixer of one NemotronV3 block (docs/model.md): its parameters, their initialisation and its forward math.
 *
 * <p>Mixers are not layers: a layer (a backbone block, an MTP depth) owns the parameter table and calls the mixer with
 * a key prefix, so the same math serves every place a block of that type appears. Parameter keys, with the prefix
 * removed, are the HF names under {@code mixer.} (e.g. {@code in_proj.weight}, {@code experts.3.up_proj.weight}).
 */
public interface Mixer {

    /** Declares this mixer's parameters, each key starting with {@code prefix}. */
    void defineParameters(SDLayerParams params, String prefix);

    /** Fills the parameter views in place as the HF reference initialises them (docs/model.md, "Initialisation"). */
    void initializeParameters(Map<String, INDArray> params, String prefix);

    /**
     * @param x [B, T, H] the normed block input
     * @return [B, T, H]
     */
    SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix);

    /**
     * {@link #define} with the packed documents of each row ({@link Documents#segments(SameDiff, SDVariable)},
     * [B, T]): a mixer that looks across positions sees only its own document. Per-token mixers ignore them.
     */
    default SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix,
                              SDVariable segments) {
        return define(sd, x, params, prefix);
    }

    /**
     * True for mixers that combine positions (Mamba2, attention), which take the packed documents; false for per-token
     * ones. (SameDiff: a document computation that no mixer reads would be a dangling output, which M2.1 takes for
     * the layer's loss.)
     */
    default boolean mixesPositions() {
        return false;
    }

    /** True for buffers that are loaded and saved but never trained (MoE {@code gate.e_score_correction_bias}). */
    default boolean isFrozen(String keyWithoutPrefix) {
        return false;
    }

    /** True for parameters that take no weight decay (AM/MG {@code _no_weight_decay}: A_log, D, dt_bias). */
    default boolean skipsWeightDecay(String keyWithoutPrefix) {
        return false;
    }

    /** The mixer {@code config} describes. */
    static Mixer of(MixerConfig config) {
        if (config instanceof Mamba2Config) {
            return new Mamba2Mixer((Mamba2Config) config);
        } else if (config instanceof AttentionConfig) {
            return new AttentionMixer((AttentionConfig) config);
        } else if (config instanceof MlpConfig) {
            return new MlpMixer((MlpConfig) config);
        } else if (config instanceof MoeConfig) {
            return new MoeMixer((MoeConfig) config);
        }
        throw new IllegalArgumentException("Unknown mixer configuration " + config);
    }
}
