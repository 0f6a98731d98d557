package org.dl4jmtp.mlp;

import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.layers.M21Workarounds;
import org.dl4jmtp.layers.Mixer;
import org.dl4jmtp.layers.ParamInit;
import org.dl4jmtp.layers.ParamKeys;
import org.dl4jmtp.layers.SdMath;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/** Dense non-gated MLP (docs/model.md, "MLP"): {@code down(relu(up(x))²)}. Also the shape of every MoE expert. */
public final class MlpMixer implements Mixer {

    public static final String UP_PROJ = ParamKeys.of("up_proj.weight");
    public static final String DOWN_PROJ = ParamKeys.of("down_proj.weight");
    public static final String UP_PROJ_BIAS = ParamKeys.of("up_proj.bias");
    public static final String DOWN_PROJ_BIAS = ParamKeys.of("down_proj.bias");

    private final MlpConfig config;

    public MlpMixer(MlpConfig config) {
        this.config = config;
    }

    @Override
    public void defineParameters(SDLayerParams params, String prefix) {
        int h = config.getHiddenSize();
        params.addWeightParam(prefix + UP_PROJ, config.getIntermediateSize(), h);
        params.addWeightParam(prefix + DOWN_PROJ, h, config.getIntermediateSize());
        if (config.isMlpBias()) {
            params.addBiasParam(prefix + UP_PROJ_BIAS, config.getIntermediateSize());
            params.addBiasParam(prefix + DOWN_PROJ_BIAS, h);
        }
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params, String prefix) {
        ParamInit.normal(params.get(prefix + UP_PROJ), config.getInitializerRange());
        ParamInit.normal(params.get(prefix + DOWN_PROJ), config.getInitializerRange());
        for (String bias : new String[]{UP_PROJ_BIAS, DOWN_PROJ_BIAS}) {
            if (params.containsKey(prefix + bias)) {
                params.get(prefix + bias).assign(0.0);
            }
        }
    }

    @Override
    public SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix) {
        int h = config.getHiddenSize();
        int inner = config.getIntermediateSize();
        SDVariable up = M21Workarounds.linear3d(sd, x, params.get(prefix + UP_PROJ), h, inner);
        if (params.containsKey(prefix + UP_PROJ_BIAS)) {
            up = up.add(params.get(prefix + UP_PROJ_BIAS));
        }
        SDVariable down = M21Workarounds.linear3d(sd, SdMath.relu2(sd, up), params.get(prefix + DOWN_PROJ), inner, h);
        return params.containsKey(prefix + DOWN_PROJ_BIAS) ? down.add(params.get(prefix + DOWN_PROJ_BIAS)) : down;
    }

    /** relu² MLP on flattened rows: x [n, in] → [n, out] with nn.Linear weights up [inner, in], down [out, inner]. */
    public static SDVariable relu2Rows(SameDiff sd, SDVariable rows, SDVariable up, SDVariable down) {
        SDVariable hidden = SdMath.relu2(sd, sd.mmul(rows, up, false, true, false));
        return sd.mmul(hidden, down, false, true, false);
    }
}
