package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.layers.rows.TokenRows;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * An explicit runtime computed on token rows that keeps its training forward pass for backprop (the block and the
 * weight-tied MTP depth). A training forward pass keeps what backprop reads in DL4J's ACTIVATIONS workspace, which
 * stays open until the step's backprop has run; backprop uses it when it is for the same input array and otherwise
 * computes the forward pass again, so a backprop without its forward pass is slower, never wrong.
 *
 * @param <F> what backprop needs from one forward pass
 */
public abstract class RowForwardLayer<F extends RowForwardLayer.Forward> extends ExplicitSequenceLayer {

    /** What one forward pass leaves; {@link #output} is dropped once the activations hold it. */
    public static class Forward {
        /** [n, out] the output rows. */
        public INDArray output;
    }

    private F kept;
    private INDArray keptFor;        // the input array the kept forward pass was computed for (identity)

    protected RowForwardLayer(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** The forward pass of the rows of {@code input} [mb, in, T], what backprop reads placed in {@code cache}. */
    protected abstract F forwardRows(INDArray input, RowMixer.Cache cache);

    /**
     * The documents packed into the rows of {@code input} [mb, in, T]: DL4J's mask array of this layer holds their ids
     * (docs/model.md, "Packed documents"); null when there is none or every row is one document.
     */
    protected Documents documents(INDArray input) {
        return Documents.of(maskArray, (int) input.size(0), (int) input.size(2), input.dataType());
    }

    /** Writes the parameter gradients into {@code gradTable}; returns dL/d(input rows) [n, in]. */
    protected abstract INDArray backwardRows(F forward, INDArray gradOutRows);

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(false);
        F f = forwardNamed(input, training ? RowMixer.Cache.inActivations(workspaceMgr) : RowMixer.Cache.CURRENT_SCOPE);
        observe(f);
        INDArray sequence = TokenRows.toSequence(f.output, input.size(0));
        INDArray out = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, input.dataType(), sequence.shape(), 'c')
                .assign(sequence);
        f.output = null;
        kept = training ? f : null;
        keptFor = training ? input : null;
        return out;
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(true);
        if (gradTable == null) {
            throw new IllegalStateException("Layer " + layerConf().getLayerName() + ": no gradient view array; the "
                    + "network sets it on its first fit (or call initGradientsView())");
        }
        F f = kept != null && keptFor == input ? kept : forwardNamed(input, RowMixer.Cache.CURRENT_SCOPE);
        kept = null;
        keptFor = null;
        INDArray epsOut = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, input.dataType(), input.shape(), 'c');
        epsOut.assign(TokenRows.toSequence(backwardRows(f, TokenRows.of(epsilon)), input.size(0)));
        Gradient gradient = new DefaultGradient(gradients);
        gradTable.forEach(gradient.gradientForVariable()::put);   // parameter order (the initializer's map)
        return new Pair<>(gradient, epsOut);
    }

    /**
     * Called once for every forward pass of {@link #activate} (training or inference), not for one recomputed inside
     * backprop: where a runtime collects statistics of its forward passes (e.g. MoE expert counts).
     */
    protected void observe(F forward) {
    }

    /**
     * Computes the forward pass of {@code input} [mb, in, T] only for {@link #observe} (e.g. the expert counts of a
     * SameDiff runtime's forward pass, which does not expose its routing); the output is dropped.
     */
    public void observeForward(INDArray input) {
        observe(forwardNamed(input, RowMixer.Cache.CURRENT_SCOPE));
    }

    @Override
    protected INDArray forward(INDArray input) {
        return TokenRows.toSequence(forwardNamed(input, RowMixer.Cache.CURRENT_SCOPE).output, input.size(0));
    }

    @Override
    protected void backward(INDArray input, INDArray gradOut, INDArray gradInput) {
        INDArray rows = backwardRows(forwardNamed(input, RowMixer.Cache.CURRENT_SCOPE), TokenRows.of(gradOut));
        gradInput.assign(TokenRows.toSequence(rows, input.size(0)));
    }

    @Override
    public void clear() {
        super.clear();
        kept = null;
        keptFor = null;
    }

    /** {@link #forwardRows} on a validated input; a shape too large for a native call names this layer. */
    private F forwardNamed(INDArray input, RowMixer.Cache cache) {
        ((SequenceSameDiffLayer) layerConf()).validateInput(input);
        try {
            return forwardRows(input, cache);
        } catch (NativeLimits.ShapeLimitException e) {
            throw NativeLimits.inLayer(layerConf().getLayerName(), e);
        }
    }
}
