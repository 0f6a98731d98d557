package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.config.NemotronV3Config;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/** Dense non-gated MLP (spec §3.3): {@code down(relu(up(x))²)}. Also the shape of every MoE expert. */
public final class MlpMixer implements Mixer {

    public static final String UP_PROJ = "up_proj.weight";
    public static final String DOWN_PROJ = "down_proj.weight";

    private final NemotronV3Config config;

    public MlpMixer(NemotronV3Config config) {
        this.config = config;
    }

    @Override
    public void defineParameters(SDLayerParams params, String prefix) {
        int h = config.getHiddenSize();
        params.addWeightParam(prefix + UP_PROJ, config.getIntermediateSize(), h);
        params.addWeightParam(prefix + DOWN_PROJ, h, config.getIntermediateSize());
        if (config.isMlpBias()) {
            params.addBiasParam(prefix + "up_proj.bias", config.getIntermediateSize());
            params.addBiasParam(prefix + "down_proj.bias", h);
        }
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params, String prefix) {
        ParamInit.normal(params.get(prefix + UP_PROJ), config.getInitializerRange());
        ParamInit.normal(params.get(prefix + DOWN_PROJ), config.getInitializerRange());
        for (String bias : new String[]{"up_proj.bias", "down_proj.bias"}) {
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
        if (params.containsKey(prefix + "up_proj.bias")) {
            up = up.add(params.get(prefix + "up_proj.bias"));
        }
        SDVariable down = M21Workarounds.linear3d(sd, SdMath.relu2(sd, up), params.get(prefix + DOWN_PROJ), inner, h);
        return params.containsKey(prefix + "down_proj.bias") ? down.add(params.get(prefix + "down_proj.bias")) : down;
    }

    /** relu² MLP on flattened rows: x [n, in] → [n, out] with nn.Linear weights up [inner, in], down [out, inner]. */
    static SDVariable relu2Rows(SameDiff sd, SDVariable rows, SDVariable up, SDVariable down) {
        SDVariable hidden = SdMath.relu2(sd, sd.mmul(rows, up, false, true, false));
        return sd.mmul(hidden, down, false, true, false);
    }
}
