package org.dl4jmtp.layers;

import org.dl4jmtp.config.NemotronV3Config;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * In-place initialisers for parameter views, following HF {@code NemotronHPreTrainedModel._init_weights}
 * (docs/model.md, "Initialisation").
 */
public final class ParamInit {

    private ParamInit() {
    }

    /** N(0, std²). */
    public static void normal(INDArray view, double std) {
        // the draw is freed at once, not by the garbage collector: over all parameters it would be another model copy
        try (INDArray draw = Nd4j.randn(view.dataType(), view.shape())) {
            view.assign(draw.muli(std));
        }
    }

    /** PyTorch's default Linear init, kaiming_uniform(a=√5) = U(±1/√fanIn), times {@code scale}. */
    public static void kaimingUniform(INDArray view, long fanIn, double scale) {
        double bound = scale / Math.sqrt(fanIn);
        try (INDArray draw = Nd4j.rand(view.dataType(), view.shape())) {
            view.assign(draw.muli(2 * bound).subi(bound));
        }
    }

    /**
     * 1/√L for output projections when {@code rescale_prenorm_residual} is set (L = main-model layers, also for MTP
     * sublayers), else 1.
     */
    public static double residualScale(NemotronV3Config config) {
        return config.isRescalePrenormResidual() ? 1.0 / Math.sqrt(config.getNumHiddenLayers()) : 1.0;
    }
}
