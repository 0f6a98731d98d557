package org.dl4jmtp.moe;

import lombok.Data;
import lombok.NoArgsConstructor;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.MixerConfig;

/** The sizes and routing settings a MoE mixer needs (LatentMoE when {@code moeLatentSize} is set). */
@Data
@NoArgsConstructor
public class MoeConfig implements MixerConfig {

    private int hiddenSize;
    private int nRoutedExperts;
    private int numExpertsPerTok;
    private int moeIntermediateSize;
    private int moeSharedExpertIntermediateSize;
    /** Width the routed experts work in, or null when they work in the hidden size. */
    private Integer moeLatentSize;
    /** Expert groups of group-limited routing ({@code n_group}); 1 = plain top-k. */
    private int nGroup = 1;
    /** Groups a token may route into ({@code topk_group}). */
    private int topkGroup = 1;
    private boolean normTopkProb;
    private double routedScalingFactor;
    private double initializerRange;

    public static MoeConfig of(NemotronV3Config c) {
        MoeConfig m = new MoeConfig();
        m.hiddenSize = c.getHiddenSize();
        m.nRoutedExperts = c.getNRoutedExperts();
        m.numExpertsPerTok = c.getNumExpertsPerTok();
        m.moeIntermediateSize = c.getMoeIntermediateSize();
        m.moeSharedExpertIntermediateSize = c.getMoeSharedExpertIntermediateSize();
        m.moeLatentSize = c.getMoeLatentSize();
        m.nGroup = c.getNGroup();
        m.topkGroup = c.getTopkGroup();
        m.normTopkProb = c.isNormTopkProb();
        m.routedScalingFactor = c.getRoutedScalingFactor();
        m.initializerRange = c.getInitializerRange();
        return m;
    }

    /** Routed experts work in a latent space (LatentMoE). */
    public boolean hasLatentMoe() {
        return moeLatentSize != null;
    }

    /** Routing is group-limited: only the best {@code topk_group} of {@code n_group} groups are eligible. */
    public boolean isGroupLimited() {
        return topkGroup < nGroup;
    }

    /** Experts per group ({@code n_routed_experts / n_group}). */
    public int expertsPerGroup() {
        return nRoutedExperts / nGroup;
    }

    /** Input width of the routed experts: moe_latent_size if set, else hidden_size. */
    public int expertInputSize() {
        return moeLatentSize != null ? moeLatentSize : hiddenSize;
    }
}
