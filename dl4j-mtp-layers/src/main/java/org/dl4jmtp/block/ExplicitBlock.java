package org.dl4jmtp.block;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.layers.ExplicitSequenceLayer;
import org.dl4jmtp.layers.NativeLimits;
import org.dl4jmtp.layers.RowMixer;
import org.dl4jmtp.layers.rows.TokenRows;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Explicit runtime of {@link NemotronV3BlockLayer}: {@code x + Mixer(RMSNorm(x))} on [mb, H, T] with an explicit
 * backprop, computed on token rows by {@link RowBlock} (mixers {@code ChunkedMamba2}, {@code SparseMoe} with a sparse
 * token dispatch, {@code CausalAttention}, {@code Relu2Mlp}).
 *
 * <p>A training forward pass keeps what backprop needs in the ACTIVATIONS workspace, which DL4J keeps open until the
 * step's backprop has run; backprop uses it when it is for the same input array and otherwise recomputes the forward
 * pass, so a backprop without its forward pass is slower, never wrong.
 */
public class ExplicitBlock extends ExplicitSequenceLayer {

    /** What backprop needs from one forward pass. */
    private static final class BlockForward {
        final INDArray input;         // the layer input this was computed for (identity)
        final RowBlock.Forward block;
        INDArray output;              // [n, H] block output rows (forward only, dropped before caching)

        BlockForward(INDArray input, RowBlock.Forward block, INDArray output) {
            this.input = input;
            this.block = block;
            this.output = output;
        }
    }

    private BlockForward cached;
    private long forwardPasses;

    public ExplicitBlock(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private NemotronV3BlockLayer blockConf() {
        return (NemotronV3BlockLayer) layerConf();
    }

    private RowBlock block() {
        return new RowBlock(blockConf().getBlock(), paramTable, "");
    }

    /** Forward passes computed so far (a backprop without its cached forward pass computes one more). */
    public long forwardPasses() {
        return forwardPasses;
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(false);
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
        if (gradTable == null) {
            throw new IllegalStateException("Layer " + layerConf().getLayerName() + ": no gradient view array; the "
                    + "network sets it on its first fit (or call initGradientsView())");
        }
        BlockForward f = cached != null && cached.input == input ? cached : forward(input, RowMixer.Cache.CURRENT_SCOPE);
        cached = null;
        long[] shape = input.shape();
        INDArray gradInput = block().backward(f.block, TokenRows.of(epsilon), gradTable);     // [n, H]
        INDArray epsOut = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, epsilon.dataType(), shape, 'c');
        epsOut.assign(TokenRows.toSequence(gradInput, shape[0]));
        Gradient gradient = new DefaultGradient(gradients);
        gradTable.forEach(gradient.gradientForVariable()::put);   // parameter order (the initializer's map)
        return new Pair<>(gradient, epsOut);
    }

    @Override
    protected INDArray forward(INDArray input) {
        return TokenRows.toSequence(forward(input, RowMixer.Cache.CURRENT_SCOPE).output, input.size(0));
    }

    @Override
    protected void backward(INDArray input, INDArray gradOut, INDArray gradInput) {
        INDArray rows = block().backward(forward(input, RowMixer.Cache.CURRENT_SCOPE).block, TokenRows.of(gradOut), gradTable);
        gradInput.assign(TokenRows.toSequence(rows, input.size(0)));
    }

    private BlockForward forward(INDArray input, RowMixer.Cache cache) {
        forwardPasses++;
        blockConf().validateInput(input);
        INDArray x = TokenRows.of(input);                                                  // [n, H]
        try {
            RowBlock.Forward block = block().forwardInPlace(x, (int) input.size(0), cache);
            return new BlockForward(input, block, x);
        } catch (NativeLimits.ShapeLimitException e) {
            throw NativeLimits.inLayer(layerConf().getLayerName(), e);
        }
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
