package org.dl4jmtp.mlp;

import org.dl4jmtp.layers.CachedMixer;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;

/** Dense relu² MLP (docs/model.md, "MLP"): {@code down(relu(up(x))²)}; no state. */
public final class CachedMlp implements CachedMixer {

    private final ModelWeights weights;

    public CachedMlp(ModelWeights weights) {
        this.weights = weights;
    }

    @Override
    public LayerState newState() {
        return LayerState.NONE;
    }

    @Override
    public INDArray forward(INDArray normed, LayerState state) {
        INDArray up = RowOps.linear(normed, weights.get("up_proj.weight"), weights.optionalVector("up_proj.bias"));
        return RowOps.linear(RowOps.relu2(up), weights.get("down_proj.weight"), weights.optionalVector("down_proj.bias"));
    }
}
