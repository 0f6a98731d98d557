package org.dl4jmtp.moe;

import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.layers.M21Workarounds;
import org.dl4jmtp.layers.Mixer;
import org.dl4jmtp.layers.ParamInit;
import org.dl4jmtp.layers.ParamKeys;
import org.dl4jmtp.layers.SdMath;
import org.dl4jmtp.mlp.MlpMixer;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/**
 * Mixture of experts (docs/model.md, "MoE"): sigmoid router; top-k selected on {@code score + e_score_correction_bias}
 * (a frozen buffer), within the best {@code topk_group} of {@code n_group} expert groups when routing is group-limited
 * (the rule of {@link MoeRouting}); weights from the unbiased scores, normalised when {@code norm_topk_prob} (for every k, k = 1 included),
 * times {@code routed_scaling_factor}; non-gated relu² experts, optionally in the LatentMoE space
 * ({@code fc1_latent_proj} before, {@code fc2_latent_proj} after the weighted sum); plus the shared expert on full x.
 *
 * <p><b>Cost:</b> every expert runs on every token and the top-k choice is applied as a 0/1 mask on the weights,
 * because M2.1's {@code gather} has no working gradient, so token dispatch is not trainable. Expert FLOPs are E/k
 * times those of a sparse MoE (e.g. 4× for 8 experts top-2); the results are identical. All experts run as one
 * relu² MLP with E·I hidden units ({@link #routedExperts}), so the number of ops does not grow with E; spreading
 * the weights over the hidden units adds an [n, E]·[E, E·I] product. The graph's MoE blocks do not pay this cost:
 * they run {@link SparseMoe} (sparse dispatch); in the graph this mixer runs only inside the weight-tied
 * MTP depth ({@code MtpDepthLayer}).
 */
public final class MoeMixer implements Mixer {

    public static final String GATE = "gate.weight";
    public static final String CORRECTION_BIAS = ParamKeys.of("gate.e_score_correction_bias");
    public static final String FC1_LATENT = ParamKeys.of("fc1_latent_proj.weight");
    public static final String FC2_LATENT = ParamKeys.of("fc2_latent_proj.weight");
    public static final String SHARED_UP = ParamKeys.of("shared_experts.up_proj.weight");
    public static final String SHARED_DOWN = ParamKeys.of("shared_experts.down_proj.weight");


    private final MoeConfig config;

    public MoeMixer(MoeConfig config) {
        this.config = config;
    }

    public static String expertUp(int expert) {
        return ParamKeys.of("experts." + expert + ".up_proj.weight");
    }

    public static String expertDown(int expert) {
        return ParamKeys.of("experts." + expert + ".down_proj.weight");
    }

    @Override
    public void defineParameters(SDLayerParams params, String prefix) {
        int h = config.getHiddenSize();
        int experts = config.getNRoutedExperts();
        int expertIn = config.expertInputSize();
        params.addWeightParam(prefix + GATE, experts, h);
        if (config.hasLatentMoe()) {
            params.addWeightParam(prefix + FC1_LATENT, expertIn, h);
            params.addWeightParam(prefix + FC2_LATENT, h, expertIn);
        }
        for (int j = 0; j < experts; j++) {
            params.addWeightParam(prefix + expertUp(j), config.getMoeIntermediateSize(), expertIn);
            params.addWeightParam(prefix + expertDown(j), expertIn, config.getMoeIntermediateSize());
        }
        params.addWeightParam(prefix + SHARED_UP, config.getMoeSharedExpertIntermediateSize(), h);
        params.addWeightParam(prefix + SHARED_DOWN, h, config.getMoeSharedExpertIntermediateSize());
        params.addBiasParam(prefix + CORRECTION_BIAS, experts);
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params, String prefix) {
        double std = config.getInitializerRange();
        for (Map.Entry<String, INDArray> e : params.entrySet()) {
            if (e.getKey().startsWith(prefix)) {
                ParamInit.normal(e.getValue(), std);  // HF: router, experts, shared expert and latent projections
            }
        }
        params.get(prefix + CORRECTION_BIAS).assign(0.0);
    }

    @Override
    public SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix) {
        int h = config.getHiddenSize();
        int experts = config.getNRoutedExperts();
        SDVariable rows = x.reshape(-1, h);                                               // [n, H]

        SDVariable scores = sd.nn().sigmoid(sd.mmul(rows, params.get(prefix + GATE), false, true, false)); // [n, E]
        SDVariable correctionBias = params.get(prefix + CORRECTION_BIAS);
        SDVariable selected = selectionMask(sd, scores.add(correctionBias));
        // + 0·bias: the frozen buffer gets an exactly-zero gradient (DL4J needs one for every parameter)
        SDVariable weights = scores.mul(selected).add(correctionBias.mul(0.0));
        if (config.isNormTopkProb()) {
            weights = weights.div(weights.sum(true, 1).add(MoeRouting.NORM_EPS));
        }
        weights = weights.mul(config.getRoutedScalingFactor());

        SDVariable expertInput = config.hasLatentMoe()
                ? sd.mmul(rows, params.get(prefix + FC1_LATENT), false, true, false) : rows;
        SDVariable routed = routedExperts(sd, expertInput, weights, params, prefix);
        if (config.hasLatentMoe()) {
            routed = sd.mmul(routed, params.get(prefix + FC2_LATENT), false, true, false);
        }
        SDVariable shared = MlpMixer.relu2Rows(sd, rows, params.get(prefix + SHARED_UP), params.get(prefix + SHARED_DOWN));
        SDVariable out = routed.add(shared);
        return SdMath.reshape(sd, out, SdMath.dims(sd, x, 0, 2), SdMath.constDims(sd, h));
    }

    /**
     * The 0/1 mask [n, E] of each token's top-k experts on {@code choice = score + bias}, group-limited when
     * {@code topk_group < n_group} (the selection rule of {@link MoeRouting}): a group scores the sum of its two
     * largest values, the best {@code topk_group} groups stay eligible, the other experts are pushed down by
     * {@link #EXCLUDED} so the top-k never reaches them. Constant for backprop.
     */
    private SDVariable selectionMask(SameDiff sd, SDVariable choice) {
        int experts = config.getNRoutedExperts();
        int k = config.getNumExpertsPerTok();
        if (!config.isGroupLimited()) {
            return M21Workarounds.topKMask(sd, choice, k, experts);
        }
        int groups = config.getNGroup();
        int size = config.expertsPerGroup();
        SDVariable values = M21Workarounds.stopGradient(sd, choice);
        SDVariable perGroup = values.reshape(-1, size);                                          // [n·G, S]
        SDVariable first = perGroup.max(true, 1);
        SDVariable firstHot = sd.oneHot(sd.argmax(perGroup, 1), size, -1, 1.0, 0.0, choice.dataType());
        SDVariable second = perGroup.sub(firstHot.mul(EXCLUDED)).max(true, 1);                  // top-2: remove one max
        SDVariable groupScores = first.add(second).reshape(-1, groups);                          // [n, G]
        SDVariable groupMask = M21Workarounds.topKMask(sd, groupScores, config.getTopkGroup(), groups);
        SDVariable eligible = sd.mmul(groupMask, SdMath.blockExpansion(sd, choice.dataType(), groups, size)); // [n, E]
        return M21Workarounds.topKMask(sd, values.sub(eligible.rsub(1.0).mul(EXCLUDED)), k, experts);
    }

    /** Subtracted from an expert outside the chosen groups (HF: −inf); scores are sigmoid outputs plus a bias. */
    private static final double EXCLUDED = 1e9;

    /**
     * {@code Σ_j w_j · down_j(relu(up_j x)²)} for all experts at once, as one wide relu² MLP whose hidden units
     * j·I … (j+1)·I-1 belong to expert j: scaling each hidden unit by its expert's weight before the (linear) down
     * projection gives the same weighted sum. The per-expert parameters are concatenated inside the graph, so the
     * parameter layout stays per expert and each gets its slice of the gradient.
     *
     * @param expertInput [n, in]
     * @param weights     [n, E] routing weights (0 for unselected experts)
     * @return [n, in]
     */
    private SDVariable routedExperts(SameDiff sd, SDVariable expertInput, SDVariable weights,
                                     Map<String, SDVariable> params, String prefix) {
        int experts = config.getNRoutedExperts();
        int expertSize = config.getMoeIntermediateSize();
        SDVariable[] ups = new SDVariable[experts];
        SDVariable[] downs = new SDVariable[experts];
        for (int j = 0; j < experts; j++) {
            ups[j] = params.get(prefix + expertUp(j));
            downs[j] = params.get(prefix + expertDown(j));
        }
        SDVariable upAll = sd.concat(0, ups);                                              // [E·I, in]
        SDVariable downAll = sd.concat(1, downs);                                          // [in, E·I]
        SDVariable hidden = SdMath.relu2(sd, sd.mmul(expertInput, upAll, false, true, false)); // [n, E·I]
        // w_j repeated over expert j's units by a 0/1 mmul: same-shape multiply below, no tile_bp or broadcast multiply_bp
        SDVariable unitWeights = sd.mmul(weights, SdMath.blockExpansion(sd, weights.dataType(), experts, expertSize));
        return sd.mmul(hidden.mul(unitWeights), downAll, false, true, false);
    }

    @Override
    public boolean isFrozen(String keyWithoutPrefix) {
        return CORRECTION_BIAS.equals(keyWithoutPrefix);
    }

    @Override
    public boolean skipsWeightDecay(String keyWithoutPrefix) {
        return isFrozen(keyWithoutPrefix);
    }
}
