package org.dl4jmtp.mlp;

import org.dl4jmtp.layers.NativeLimits;
import org.dl4jmtp.layers.RowMixer;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Map;

/**
 * The dense MLP mixer ({@code down(relu(up·x)²)}, same math and keys as {@link MlpMixer}) on token rows with its
 * explicit backprop: two GEMMs each way, and the relu² derivative {@code 2·relu(u)} from the one kept array.
 */
public final class Relu2Mlp extends RowMixer<Relu2Mlp.Forward> {

    /** What backprop needs from one forward pass. */
    public static final class Forward {
        final INDArray input;   // [n, H] the normed block input
        final INDArray hidden;  // [n, I] relu(up·x + b)

        private Forward(INDArray input, INDArray hidden) {
            this.input = input;
            this.hidden = hidden;
        }
    }

    private final MlpConfig config;

    public Relu2Mlp(MlpConfig config, Map<String, INDArray> params, String prefix) {
        super(params, prefix);
        this.config = config;
    }

    @Override
    public Result<Forward> forward(INDArray x, int batch, Cache cache) {
        NativeLimits.check(prefix + MlpMixer.UP_PROJ + " output [n, intermediate]", x.size(0),
                config.getIntermediateSize());
        INDArray hidden = cache.createUninitialized(x.dataType(), x.size(0), config.getIntermediateSize());
        Nd4j.gemm(x, param(MlpMixer.UP_PROJ), hidden, false, true, 1.0, 0.0);
        if (params.containsKey(prefix + MlpMixer.UP_PROJ_BIAS)) {
            hidden.addiRowVector(param(MlpMixer.UP_PROJ_BIAS));
        }
        Transforms.relu(hidden, false);
        INDArray out = linear(hidden.mul(hidden), MlpMixer.DOWN_PROJ, MlpMixer.DOWN_PROJ_BIAS);
        return new Result<>(out, new Forward(x, hidden));
    }

    @Override
    public INDArray backward(Forward f, INDArray gradOut, Map<String, INDArray> gradients) {
        INDArray gradActivation = linearBackward(gradOut, f.hidden.mul(f.hidden), MlpMixer.DOWN_PROJ,
                MlpMixer.DOWN_PROJ_BIAS, gradients);
        INDArray gradPre = gradActivation.muli(f.hidden).muli(2.0);                   // d relu(u)²/du = 2·relu(u)
        return linearBackward(gradPre, f.input, MlpMixer.UP_PROJ, MlpMixer.UP_PROJ_BIAS, gradients);
    }
}
