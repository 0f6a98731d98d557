package org.dl4jmtp.attention;

import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.M21Workarounds;
import org.dl4jmtp.layers.Mixer;
import org.dl4jmtp.layers.ParamInit;
import org.dl4jmtp.layers.ParamKeys;
import org.dl4jmtp.layers.SdMath;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/**
 * Causal grouped-query attention without positional encoding (docs/model.md, "Attention"): q width {@code nq·head_dim}
 * (may differ
 * from H), query head i reads kv head {@code i / (nq/nkv)}, scale 1/√head_dim.
 *
 * <p>Written out by hand: M2.1's {@code multiHeadDotProductAttention} accepts only a [mb, T] key mask, not a causal one.
 */
public final class AttentionMixer implements Mixer {

    public static final String Q_PROJ = ParamKeys.of("q_proj.weight");
    public static final String K_PROJ = ParamKeys.of("k_proj.weight");
    public static final String V_PROJ = ParamKeys.of("v_proj.weight");
    public static final String O_PROJ = ParamKeys.of("o_proj.weight");
    public static final String Q_BIAS = ParamKeys.of("q_proj.bias");
    public static final String K_BIAS = ParamKeys.of("k_proj.bias");
    public static final String V_BIAS = ParamKeys.of("v_proj.bias");
    public static final String O_BIAS = ParamKeys.of("o_proj.bias");
    private static final String[] BIASES = {Q_BIAS, K_BIAS, V_BIAS, O_BIAS};

    /** Added to masked scores; large enough that softmax gives exactly 0 in float and double. */
    public static final double MASKED_SCORE = 1e9;

    private final AttentionConfig config;

    public AttentionMixer(AttentionConfig config) {
        this.config = config;
    }

    @Override
    public boolean mixesPositions() {
        return true;
    }

    @Override
    public void defineParameters(SDLayerParams params, String prefix) {
        int h = config.getHiddenSize();
        params.addWeightParam(prefix + Q_PROJ, config.queryWidth(), h);
        params.addWeightParam(prefix + K_PROJ, config.kvWidth(), h);
        params.addWeightParam(prefix + V_PROJ, config.kvWidth(), h);
        params.addWeightParam(prefix + O_PROJ, h, config.queryWidth());
        if (config.isAttentionBias()) {
            params.addBiasParam(prefix + BIASES[0], config.queryWidth());
            params.addBiasParam(prefix + BIASES[1], config.kvWidth());
            params.addBiasParam(prefix + BIASES[2], config.kvWidth());
            params.addBiasParam(prefix + BIASES[3], h);
        }
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params, String prefix) {
        double std = config.getInitializerRange();
        for (String key : new String[]{Q_PROJ, K_PROJ, V_PROJ, O_PROJ}) {
            ParamInit.normal(params.get(prefix + key), std);  // HF: N(0, initializer_range), no rescale of o_proj
        }
        for (String bias : BIASES) {
            if (params.containsKey(prefix + bias)) {
                params.get(prefix + bias).assign(0.0);
            }
        }
    }

    @Override
    public SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix) {
        return define(sd, x, params, prefix, null);
    }

    /** Attention within each document ({@code segments} [B, T], null: one document per row). */
    @Override
    public SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix,
                             SDVariable segments) {
        int h = config.getHiddenSize();
        int nq = config.getNumAttentionHeads();
        int nkv = config.getNumKeyValueHeads();
        int headDim = config.getHeadDim();
        SDVariable batchTime = SdMath.dims(sd, x, 0, 2);

        SDVariable q = heads(sd, project(sd, x, params, prefix, 0, config.queryWidth()), batchTime, nq);     // [B, nq, T, hd]
        SDVariable k = heads(sd, project(sd, x, params, prefix, 1, config.kvWidth()), batchTime, nkv);     // [B, nkv, T, hd]
        SDVariable v = heads(sd, project(sd, x, params, prefix, 2, config.kvWidth()), batchTime, nkv);
        SDVariable causal = SdMath.causalMask(sd, sd.sizeAt(x, 1), x.dataType(), false);
        SDVariable additiveMask = causal.sub(1.0).mul(MASKED_SCORE);                           // [T, T]: 0 or -1e9

        // Performance (issue 6): GQA without repeating K/V. The r = nq/nkv query heads of a kv head are contiguous, so
        // [B, nq, T, hd] is [B, nkv, r·T, hd]: one batched mmul per kv head, no tile of K and V (M2.1's tile_bp was
        // the most expensive op of an attention layer). Same values as repeating K/V.
        int r = config.queriesPerKvHead();
        SDVariable batch = SdMath.dims(sd, x, 0, 1);
        SDVariable time = SdMath.dims(sd, x, 1, 2);
        SDVariable qFolded = SdMath.reshape(sd, q, batch, SdMath.constDims(sd, nkv, -1, headDim));    // [B, nkv, r·T, hd]
        SDVariable scores = sd.mmul(qFolded, k, false, true, false).mul(1.0 / Math.sqrt(headDim)); // [B, nkv, r·T, T]
        SDVariable scores5 = SdMath.reshape(sd, scores, batch, SdMath.constDims(sd, nkv, r), time, time); // [B, nkv, r, T, T]
        SDVariable masked = scores5.add(additiveMask);
        if (segments != null) {
            SDVariable documentMask = Documents.crossDocumentBias(sd, segments, segments, MASKED_SCORE); // [B, T, T]
            masked = masked.add(sd.expandDims(sd.expandDims(documentMask, 1), 1));
        }
        SDVariable probs = sd.nn().softmax(masked, 4);
        SDVariable probsFolded = SdMath.reshape(sd, probs, batch, SdMath.constDims(sd, nkv, -1), time); // [B, nkv, r·T, T]
        SDVariable contextFolded = sd.mmul(probsFolded, v);                                     // [B, nkv, r·T, hd]
        SDVariable context = SdMath.reshape(sd, contextFolded, batch, SdMath.constDims(sd, nq), time,
                SdMath.constDims(sd, headDim)).permute(0, 2, 1, 3);                             // [B, T, nq, hd]
        SDVariable merged = SdMath.reshape(sd, context, batchTime, SdMath.constDims(sd, config.queryWidth()));
        SDVariable out = M21Workarounds.linear3d(sd, merged, params.get(prefix + O_PROJ), config.queryWidth(), h);
        return params.containsKey(prefix + BIASES[3]) ? out.add(params.get(prefix + BIASES[3])) : out;
    }

    private SDVariable project(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix, int which, int width) {
        String key = new String[]{Q_PROJ, K_PROJ, V_PROJ}[which];
        SDVariable y = M21Workarounds.linear3d(sd, x, params.get(prefix + key), config.getHiddenSize(), width);
        return params.containsKey(prefix + BIASES[which]) ? y.add(params.get(prefix + BIASES[which])) : y;
    }

    /** [B, T, n·hd] → [B, n, T, hd]. */
    private SDVariable heads(SameDiff sd, SDVariable projected, SDVariable batchTime, int numHeads) {
        return SdMath.reshape(sd, projected, batchTime, SdMath.constDims(sd, numHeads, config.getHeadDim()))
                .permute(0, 2, 1, 3);
    }
}
