package org.dl4jmtp.block;

import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.layers.Mixer;
import org.dl4jmtp.layers.SdMath;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/**
 * One NemotronV3 block (docs/model.md, "Backbone and block"): {@code x + Mixer(RMSNorm(x))}, with a single norm and a
 * single residual. Used by the
 * backbone layers ({@link NemotronV3BlockLayer}) and by every MTP sublayer ({@code MtpDepthLayer}), with a key prefix
 * so that parameter keys read as the HF names: {@code norm.weight}, {@code mixer.in_proj.weight}, ...
 */
public final class NemotronV3Block {

    public static final String NORM = "norm.weight";
    public static final String MIXER_PREFIX = "mixer.";

    private final BlockConfig config;
    private final Mixer mixer;

    public NemotronV3Block(BlockConfig config) {
        this.config = config;
        this.mixer = Mixer.of(config.mixer());
    }

    public void defineParameters(SDLayerParams params, String prefix) {
        params.addWeightParam(prefix + NORM, config.getHiddenSize());
        mixer.defineParameters(params, prefix + MIXER_PREFIX);
    }

    public void initializeParameters(Map<String, INDArray> params, String prefix) {
        params.get(prefix + NORM).assign(1.0);
        mixer.initializeParameters(params, prefix + MIXER_PREFIX);
    }

    /** @param x [B, T, H] → [B, T, H] */
    public SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix) {
        return define(sd, x, params, prefix, null);
    }

    /** @param segments [B, T] the packed documents ({@code Documents.segments}), null: one per row */
    public SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix,
                             SDVariable segments) {
        SDVariable normed = SdMath.rmsNorm(sd, x, params.get(prefix + NORM), config.getLayerNormEpsilon(), 3);
        return x.add(mixer.define(sd, normed, params, prefix + MIXER_PREFIX, segments));
    }

    /** True when the block's mixer combines positions and so reads the packed documents. */
    public boolean mixesPositions() {
        return mixer.mixesPositions();
    }

    /** @param key a key relative to this block's prefix */
    public boolean isFrozen(String key) {
        return key.startsWith(MIXER_PREFIX) && mixer.isFrozen(key.substring(MIXER_PREFIX.length()));
    }

    /** @param key a key relative to this block's prefix */
    public boolean skipsWeightDecay(String key) {
        return key.startsWith(MIXER_PREFIX) && mixer.skipsWeightDecay(key.substring(MIXER_PREFIX.length()));
    }
}
