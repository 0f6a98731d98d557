package org.dl4jmtp.config;

import java.util.List;

import lombok.Data;
import lombok.NoArgsConstructor;

/**
 * Multi-Token Prediction training settings, as NeMo Automodel's {@code MTPConfig} (docs/model.md, "Configuration"),
 * plus the loss
 * normalisation.
 *
 * <p>D ({@link #getNumLayers()}) is the number of FORWARD depths, a training setting (Megatron
 * {@code --mtp-num-layers}); the HF {@code num_nextn_predict_layers} is the number of PHYSICAL depths stored in a
 * checkpoint ({@link #physicalDepthsInCheckpoint(NemotronV3Config)}). With {@link #isUseRepeatedLayer()} one
 * physical depth is reused for all D depths.
 *
 * <p>Same bean rule as {@link NemotronV3Config}: stored fields have getters and setters, derived values are plain
 * methods not named {@code getX}/{@code isX}, because DL4J's Jackson serialises this class inside layer
 * configurations.
 */
@Data
@NoArgsConstructor
public class MtpConfig {

    /** λ when none is given: NeMo Automodel's default. */
    public static final double DEFAULT_LOSS_SCALING_FACTOR = 0.1;

    /** D, the number of forward MTP depths; 0 disables MTP. */
    private int numLayers = 0;
    /** Sublayer pattern of one depth, e.g. {@code "*E"}. */
    private String layerPattern = "";
    /** λ: the MTP term is (λ/D)·Σ_d L_d. */
    private double lossScalingFactor = DEFAULT_LOSS_SCALING_FACTOR;
    /** Tie the weights of all depths (one physical depth). */
    private boolean useRepeatedLayer = false;
    /** Denominator of each depth's CE sum. */
    private MtpLossNormalization lossNormalization = MtpLossNormalization.MAIN_LABEL_COUNT;

    /** @return a config with MTP off (D = 0, empty pattern) */
    public static MtpConfig disabled() {
        return new MtpConfig();
    }

    /** @return a builder starting from the defaults (D = 0, "", λ = 0.1, not repeated, main label count) */
    public static Builder builder() {
        return new Builder();
    }

    /** {@link #fromHf(NemotronV3Config, Double, Integer, Boolean)} with every setting at its default. */
    public static MtpConfig fromHf(NemotronV3Config cfg) {
        return fromHf(cfg, null, null, null);
    }

    /**
     * Like NeMo Automodel's {@code build_mtp_config_from_hf}: D = the override, else
     * {@code cfg.numNextnPredictLayers}; the pattern from {@code cfg.mtpLayerTypes}
     * ({@code mtp_hybrid_override_pattern} or {@code mtp_layers_block_type}).
     *
     * @param lossScalingFactor             λ, null = 0.1
     * @param numNextnPredictLayersOverride D, null = {@code cfg.getNumNextnPredictLayers()}
     * @param useRepeatedLayer              null = false
     * @throws IllegalArgumentException if D &gt; 0 but the config has no MTP layer types, or a setting is invalid
     */
    public static MtpConfig fromHf(NemotronV3Config cfg, Double lossScalingFactor,
                                   Integer numNextnPredictLayersOverride, Boolean useRepeatedLayer) {
        int depths = numNextnPredictLayersOverride != null ? numNextnPredictLayersOverride
                : cfg.getNumNextnPredictLayers();
        String pattern = cfg.mtpPattern() == null ? "" : cfg.mtpPattern();
        if (depths > 0 && pattern.isEmpty()) {
            throw new IllegalArgumentException("MTP with D = " + depths + " depths needs the sublayer pattern of a"
                    + " depth, but the config has no mtp_hybrid_override_pattern / mtp_layers_block_type");
        }
        return builder()
                .numLayers(depths)
                .layerPattern(pattern)
                .lossScalingFactor(lossScalingFactor != null ? lossScalingFactor : DEFAULT_LOSS_SCALING_FACTOR)
                .useRepeatedLayer(useRepeatedLayer != null && useRepeatedLayer)
                .build();
    }

    /** @return the number of physical MTP depths stored in an HF checkpoint with this config ({@code num_nextn_predict_layers}) */
    public static int physicalDepthsInCheckpoint(NemotronV3Config cfg) {
        return cfg.getNumNextnPredictLayers();
    }

    // ---- derived values (plain methods: not bean properties) ----

    /** @return the parsed sublayer types of one depth; empty if the pattern is empty */
    public List<BlockType> blockTypes() {
        return patternLength() == 0 ? List.of() : MtpLayerPattern.parse(layerPattern);
    }

    /** @return P_m, the number of sublayers per depth */
    public int patternLength() {
        return layerPattern == null ? 0 : layerPattern.length();
    }

    /** @return true if MTP runs: D &gt; 0 and a non-empty pattern */
    public boolean enabled() {
        return numLayers > 0 && patternLength() > 0;
    }

    /**
     * @return depths with their own weights: 1 if repeated, else D (0 when D = 0, so nothing is built for a
     * disabled MTP even if the repeated flag is set)
     */
    public int numPhysicalDepths() {
        if (numLayers <= 0) {
            return 0;
        }
        return useRepeatedLayer ? 1 : numLayers;
    }

    /** @return the number of MTP sublayers with their own weights: physical depths · P_m */
    public int totalSublayers() {
        return numPhysicalDepths() * patternLength();
    }

    /**
     * @param depth1Based forward depth d in 1..D
     * @return the physical depth whose weights depth d uses: 0 if repeated, else d − 1
     */
    public int physicalDepthOf(int depth1Based) {
        if (depth1Based < 1 || depth1Based > numLayers) {
            throw new IllegalArgumentException("MTP depth must be in 1.." + numLayers + ", got " + depth1Based);
        }
        return useRepeatedLayer ? 0 : depth1Based - 1;
    }

    /**
     * @return the global sublayer index {@code physicalDepth·P_m + sublayer}, as in the checkpoint key
     * {@code mtp.layers.{index}.*}
     */
    public int globalSublayerIndex(int physicalDepth, int sublayer) {
        if (physicalDepth < 0 || physicalDepth >= numPhysicalDepths() || sublayer < 0 || sublayer >= patternLength()) {
            throw new IllegalArgumentException("MTP sublayer (" + physicalDepth + ", " + sublayer + ") is outside "
                    + numPhysicalDepths() + " physical depths x " + patternLength() + " sublayers");
        }
        return physicalDepth * patternLength() + sublayer;
    }

    /** @return the weight λ/D of each depth's loss, 0 when MTP is disabled */
    public double depthLossWeight() {
        return enabled() ? lossScalingFactor / numLayers : 0.0;
    }

    /**
     * Checks λ ≥ 0 and finite, D ≥ 0, a normalisation is set, and the pattern parses when D &gt; 0.
     *
     * @throws IllegalArgumentException naming the setting
     */
    public void validate() {
        if (!(Double.isFinite(lossScalingFactor) && lossScalingFactor >= 0)) {
            throw new IllegalArgumentException("MTP loss scaling factor (lambda) must be finite and >= 0, got "
                    + lossScalingFactor);
        }
        if (numLayers < 0) {
            throw new IllegalArgumentException("MTP num_layers (D) must be >= 0, got " + numLayers);
        }
        if (lossNormalization == null) {
            throw new IllegalArgumentException("MTP loss normalisation must be set");
        }
        if (numLayers > 0) {
            MtpLayerPattern.parse(layerPattern);
        }
    }

    /** Fluent builder; {@link #build()} validates. */
    public static final class Builder {
        private final MtpConfig config = new MtpConfig();

        private Builder() {
        }

        /** @param d forward depths D (≥ 0) */
        public Builder numLayers(int d) {
            config.setNumLayers(d);
            return this;
        }

        /** @param pattern sublayers of one depth, e.g. "*E" */
        public Builder layerPattern(String pattern) {
            config.setLayerPattern(pattern == null ? "" : pattern);
            return this;
        }

        /** @param lambda λ (finite, ≥ 0) */
        public Builder lossScalingFactor(double lambda) {
            config.setLossScalingFactor(lambda);
            return this;
        }

        public Builder useRepeatedLayer(boolean repeated) {
            config.setUseRepeatedLayer(repeated);
            return this;
        }

        public Builder lossNormalization(MtpLossNormalization normalization) {
            config.setLossNormalization(normalization);
            return this;
        }

        /** @return a new validated config (the builder can be reused) */
        public MtpConfig build() {
            MtpConfig out = new MtpConfig();
            out.setNumLayers(config.getNumLayers());
            out.setLayerPattern(config.getLayerPattern());
            out.setLossScalingFactor(config.getLossScalingFactor());
            out.setUseRepeatedLayer(config.isUseRepeatedLayer());
            out.setLossNormalization(config.getLossNormalization());
            out.validate();
            return out;
        }
    }
}
