package org.dl4jmtp.block;

import org.dl4jmtp.layers.CachedMixer;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;

/** One NemotronV3 block (docs/model.md, "Backbone and block"), cached: {@code x + Mixer(RMSNorm(x))}. */
public final class CachedBlock {

    private final ModelWeights weights;
    private final CachedMixer mixer;
    private final double eps;

    /** @param weights the block's views ({@code backbone.layers.{i}.} or {@code mtp.layers.{g}.}) */
    public CachedBlock(BlockConfig config, ModelWeights weights) {
        this.weights = weights;
        this.mixer = CachedMixer.of(config.mixer(), weights.under("mixer."));
        this.eps = config.getLayerNormEpsilon();
    }

    public LayerState newState() {
        return mixer.newState();
    }

    /** @param x [n, H] the residual stream of n new tokens → [n, H] */
    public INDArray forward(INDArray x, LayerState state) {
        return x.add(mixer.forward(RowOps.rmsNorm(x, weights.vector("norm.weight"), eps), state));
    }
}
