package org.dl4jmtp.block;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.BaseLayer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.RowMixer;
import org.dl4jmtp.layers.rows.TokenRows;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Arrays;

/**
 * Runtime of {@link ExplicitBlockLayer}: {@code x + Mixer(RMSNorm(x))} on [mb, H, T] with explicit backprop, computed
 * on token rows by {@link RowBlock} (mixers {@link ChunkedMamba2}, {@link SparseMoe}, {@link CausalAttention},
 * {@link Relu2Mlp}).
 *
 * <p>A training forward pass keeps what backprop needs in the ACTIVATIONS workspace, which DL4J keeps open until the
 * step's backprop has run; backprop uses it when it is for the same input array and otherwise recomputes the forward
 * pass, so a backprop without its forward pass is slower, never wrong.
 */
public class ExplicitBlockRuntimeLayer extends BaseLayer<ExplicitBlockLayer> {

    /** What backprop needs from one forward pass. */
    private static final class BlockForward {
        final INDArray input;         // the layer input this was computed for (identity)
        public final RowBlock.Forward block;
        INDArray output;              // [n, H] block output rows (forward only, dropped before caching)

    public     BlockForward(INDArray input, RowBlock.Forward block, INDArray output) {
            this.input = input;
            this.block = block;
            this.output = output;
        }
    }

    private BlockForward cached;
    private long forwardPasses;

    public ExplicitBlockRuntimeLayer(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private RowBlock block() {
        return new RowBlock(layerConf().getBlockType(), config(), params, "");
    }

    private NemotronV3Config config() {
        return layerConf().getConfig();
    }

    /** Forward passes computed so far (a backprop without its cached forward pass computes one more). */
    public long forwardPasses() {
        return forwardPasses;
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(false);
        checkSupported();
        BlockForward f = forward(input, training ? RowMixer.Cache.inActivations(workspaceMgr) : RowMixer.Cache.CURRENT_SCOPE);
        INDArray out = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, input.dataType(), input.shape(), 'c');
        out.assign(TokenRows.toSequence(f.output, input.size(0)));
        f.output = null;
        cached = training ? f : null;
        return out;
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(true);
        if (gradientViews == null) {
            throw new IllegalStateException("Layer " + layerConf().getLayerName() + ": no gradient view array; the "
                    + "network sets it on its first fit (or call initGradientsView())");
        }
        BlockForward f = cached != null && cached.input == input ? cached : forward(input, RowMixer.Cache.CURRENT_SCOPE);
        cached = null;
        long[] shape = input.shape();
        INDArray gradInput = block().backward(f.block, TokenRows.of(epsilon), gradientViews);     // [n, H]
        INDArray epsOut = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, epsilon.dataType(), shape, 'c');
        epsOut.assign(TokenRows.toSequence(gradInput, shape[0]));
        Gradient gradient = new DefaultGradient(gradientsFlattened);
        gradientViews.forEach(gradient.gradientForVariable()::put);   // parameter order (the initializer's map)
        return new Pair<>(gradient, epsOut);
    }

    private BlockForward forward(INDArray input, RowMixer.Cache cache) {
        forwardPasses++;
        NemotronV3Config config = config();
        if (input.rank() != 3 || input.size(1) != config.getHiddenSize()) {
            throw new IllegalArgumentException("Layer " + layerConf().getLayerName() + " (ExplicitBlockLayer) expects input [mb, "
                    + config.getHiddenSize() + ", T], got " + Arrays.toString(input.shape()));
        }
        INDArray x = TokenRows.of(input);                                                  // [n, H]
        RowBlock.Forward block = block().forwardInPlace(x, (int) input.size(0), cache);
        return new BlockForward(input, block, x);
    }

    private void checkSupported() {
        if (layerConf().getWeightNoise() != null || layerConf().getIDropout() != null) {
            throw new UnsupportedOperationException("Layer " + layerConf().getLayerName()
                    + " (ExplicitBlockLayer) supports neither weight noise nor dropout");
        }
    }

    @Override
    public boolean isPretrainLayer() {
        return false;
    }

    @Override
    public Type type() {
        return Type.RECURRENT;
    }

    @Override
    public void clear() {
        super.clear();
        cached = null;
    }
}
