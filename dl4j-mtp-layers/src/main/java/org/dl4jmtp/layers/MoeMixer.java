package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.config.NemotronV3Config;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Map;

/**
 * Mixture of experts (spec §3.4): sigmoid router; top-k selected on {@code score + e_score_correction_bias} (a frozen
 * buffer); weights from the unbiased scores, normalised when {@code norm_topk_prob} (for every k, k = 1 included),
 * times {@code routed_scaling_factor}; non-gated relu² experts, optionally in the LatentMoE space
 * ({@code fc1_latent_proj} before, {@code fc2_latent_proj} after the weighted sum); plus the shared expert on full x.
 *
 * <p><b>Dispatch:</b> each expert runs only on the tokens routed to it ({@link #routedExperts}: {@code dynamic_partition}
 * / {@code dynamic_stitch}, whose gradients work in M2.1, instead of {@code gather}, whose gradient does not), so the
 * routed-expert FLOPs are those of a sparse MoE. The top-k choice itself is k rounds of argmax
 * ({@link M21Workarounds#topKIndices}).
 */
public final class MoeMixer implements Mixer {

    public static final String GATE = "gate.weight";
    public static final String CORRECTION_BIAS = ParamKeys.of("gate.e_score_correction_bias");
    public static final String FC1_LATENT = ParamKeys.of("fc1_latent_proj.weight");
    public static final String FC2_LATENT = ParamKeys.of("fc2_latent_proj.weight");
    public static final String SHARED_UP = ParamKeys.of("shared_experts.up_proj.weight");
    public static final String SHARED_DOWN = ParamKeys.of("shared_experts.down_proj.weight");

    /** Added to the sum of the selected weights before normalising, as HF does. */
    private static final double NORM_EPS = 1e-20;

    private final NemotronV3Config config;

    public MoeMixer(NemotronV3Config config) {
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
        int k = config.getNumExpertsPerTok();
        SDVariable[] choices = M21Workarounds.topKIndices(sd, scores.add(correctionBias), k, experts); // k × [n]
        // + 0·bias: the frozen buffer gets an exactly-zero gradient (DL4J needs one for every parameter)
        SDVariable unbiased = scores.add(correctionBias.mul(0.0));
        SDVariable[] chosen = new SDVariable[k];
        for (int j = 0; j < k; j++) {
            SDVariable oneHot = sd.oneHot(choices[j], experts, -1, 1.0, 0.0, scores.dataType());
            chosen[j] = unbiased.mul(oneHot).sum(true, 1);                                 // [n, 1]
        }
        SDVariable weights = k == 1 ? chosen[0] : sd.concat(1, chosen);                    // [n, k]
        if (config.isNormTopkProb()) {
            // k = 1: the sum is the weight itself (M2.1 fails on a keepDims sum over an axis of size 1)
            SDVariable total = k == 1 ? weights : weights.sum(true, 1);
            weights = weights.div(total.add(NORM_EPS));
        }
        weights = weights.mul(config.getRoutedScalingFactor());

        SDVariable expertInput = config.hasLatentMoe()
                ? sd.mmul(rows, params.get(prefix + FC1_LATENT), false, true, false) : rows;
        SDVariable routed = routedExperts(sd, expertInput, choices, weights, params, prefix);
        if (config.hasLatentMoe()) {
            routed = sd.mmul(routed, params.get(prefix + FC2_LATENT), false, true, false);
        }
        SDVariable shared = MlpMixer.relu2Rows(sd, rows, params.get(prefix + SHARED_UP), params.get(prefix + SHARED_DOWN));
        SDVariable out = routed.add(shared);
        return SdMath.reshape(sd, out, SdMath.dims(sd, x, 0, 2), SdMath.constDims(sd, h));
    }

    /**
     * {@code Σ_j w_j · down_{e_j}(relu(up_{e_j} x)²)} over each token's k chosen experts, computing each expert only
     * on its own tokens. The token rows are repeated once per choice ("slots", choice-major: slot j·n + t), split by
     * expert with {@code dynamic_partition}, run through their expert, put back in slot order with
     * {@code dynamic_stitch}, weighted and summed over the k choices. Both ops have working gradients in M2.1, unlike
     * {@code gather}. Every expert also gets one zero row (slots 0..E-1, dropped afterwards): M2.1's
     * {@code matmul_bp} fails on an empty matrix, and an expert may receive no token; a zero row adds nothing to
     * the expert's gradient.
     *
     * @param expertInput [n, in]
     * @param choices     k index vectors [n]: each token's chosen experts
     * @param weights     [n, k] routing weights of the choices
     * @return [n, in]
     */
    private SDVariable routedExperts(SameDiff sd, SDVariable expertInput, SDVariable[] choices, SDVariable weights,
                                     Map<String, SDVariable> params, String prefix) {
        int experts = config.getNRoutedExperts();
        int k = choices.length;
        long in = config.expertInputSize();
        SDVariable[] slotRows = new SDVariable[k + 1];
        SDVariable[] slotExperts = new SDVariable[k + 1];
        slotRows[0] = sd.constant(Nd4j.zeros(expertInput.dataType(), experts, in));
        slotExperts[0] = sd.constant(Nd4j.arange(experts).castTo(DataType.INT64));
        for (int j = 0; j < k; j++) {
            slotRows[j + 1] = expertInput;
            slotExperts[j + 1] = choices[j].castTo(DataType.INT64);
        }
        SDVariable slotExpert = sd.concat(0, slotExperts);                                // [E + k·n]
        SDVariable slotPosition = sd.range(sd.constant(Nd4j.scalar(0L)), sd.sizeAt(slotExpert, 0),
                sd.constant(Nd4j.scalar(1L)), DataType.INT64);
        SDVariable[] expertRows = sd.dynamicPartition(sd.concat(0, slotRows), slotExpert, experts);
        SDVariable[] expertPositions = sd.dynamicPartition(slotPosition, slotExpert, experts);
        SDVariable[] expertOutputs = new SDVariable[experts];
        for (int e = 0; e < experts; e++) {
            expertOutputs[e] = MlpMixer.relu2Rows(sd, expertRows[e],
                    params.get(prefix + expertUp(e)), params.get(prefix + expertDown(e)));
        }
        SDVariable stitched = sd.dynamicStitch(expertPositions, expertOutputs);           // [E + k·n, in]
        SDVariable slotOutputs = sd.stridedSlice(stitched, new long[]{experts, 0}, new long[]{0, 0},
                new long[]{1, 1}, 0, 3, 0, 0, 0);                                          // [k·n, in]
        SDVariable slotWeights = weights.permute(1, 0).reshape(-1, 1);                    // [k·n, 1], choice-major
        SDVariable weighted = M21Workarounds.broadcastMul(sd, slotOutputs, slotWeights);
        return k == 1 ? weighted : weighted.reshape(k, -1, in).sum(0);
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
