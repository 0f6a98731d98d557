package org.dl4jmtp.layers;

import lombok.Data;
import lombok.EqualsAndHashCode;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.samediff.SameDiffLayer;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.learning.regularization.Regularization;

import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * Base of every dl4j-mtp sequence layer. At the layer boundary activations are DL4J's recurrent NCW layout
 * [mb, features, T]; the math is written in [mb, T, features]. This base does the two permutes, applies the
 * doubled-gradient fix of M2.1 ({@link M21Workarounds#fixDoubledGradient}) once for all layers, validates the input
 * type, and keeps frozen buffers out of the updater and no-decay parameters out of regularisation.
 */
@Data
@EqualsAndHashCode(callSuper = true)
public abstract class SequenceSameDiffLayer extends SameDiffLayer implements FrozenParams, RuntimeSelectable {

    /** Which of the two computations runs; absent in zips written before it existed, which then run EXPLICIT. */
    private LayerRuntime runtime = LayerRuntime.EXPLICIT;

    protected SequenceSameDiffLayer() {
        // for JSON deserialisation
    }

    protected SequenceSameDiffLayer(Builder<?> builder) {
        super(builder);
        if (builder instanceof RuntimeBuilder) {
            this.runtime = ((RuntimeBuilder<?>) builder).runtime;
        }
    }

    /** Feature size expected at the input (NCW dimension 1). */
    public abstract long inputSize();

    /** Feature size produced (NCW dimension 1). */
    public abstract long outputSize();

    /**
     * @param x [B, T, inputSize]
     * @return [B, T, outputSize]
     */
    protected abstract SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params);

    /**
     * {@link #defineSequence(SameDiff, SDVariable, Map)} with the layer's mask: the document id of every position
     * [B, T] (all ones when none was given: one document per row). Layers that look across positions override it.
     */
    protected SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params,
                                        SDVariable documentIds) {
        return defineSequence(sd, x, params);
    }

    /**
     * True for a layer with MoE blocks: its runtime then reports the tokens routed to each expert
     * ({@code org.dl4jmtp.moe.ExpertLoadSource}), on the SameDiff runtime through {@link CountingSameDiffLayer}.
     */
    public boolean routesToExperts() {
        return false;
    }

    /** Buffers that are loaded and saved but never updated. */
    @Override
    public boolean isFrozenParam(String key) {
        return false;
    }

    /** Parameters exempt from weight decay and L1/L2. */
    public boolean skipsWeightDecay(String key) {
        return isFrozenParam(key);
    }

    @Override
    public SDVariable defineLayer(SameDiff sd, SDVariable layerInput, Map<String, SDVariable> params, SDVariable mask) {
        SDVariable out = defineSequence(sd, layerInput.permute(0, 2, 1), params, mask).permute(0, 2, 1);
        return M21Workarounds.fixDoubledGradient(sd, out);
    }

    /** The explicit runtime of this layer: its forward pass and backprop written with ND4J ops. */
    protected abstract ExplicitSequenceLayer explicitRuntime(NeuralNetConfiguration conf, DataType dataType);

    /**
     * The runtime {@link #getRuntime()} selects: DL4J's SameDiff layer executing {@link #defineSequence}, or
     * {@link #explicitRuntime}, set up as DL4J's {@code SameDiffLayer.instantiate} does.
     */
    @Override
    public Layer instantiate(NeuralNetConfiguration conf, Collection<TrainingListener> listeners, int layerIndex,
                             INDArray layerParamsView, boolean initializeParams, DataType networkDataType) {
        if (runtime == LayerRuntime.SAMEDIFF && !routesToExperts()) {
            return super.instantiate(conf, listeners, layerIndex, layerParamsView, initializeParams, networkDataType);
        }
        if (runtime == LayerRuntime.SAMEDIFF) {
            // as DL4J's SameDiffLayer.instantiate, plus the explicit runtime that counts the expert loads
            CountingSameDiffLayer layer = new CountingSameDiffLayer(conf, networkDataType,
                    (RowForwardLayer<?>) explicitRuntime(conf, networkDataType));
            layer.setIndex(layerIndex);
            layer.setParamsViewArray(layerParamsView);
            layer.setParamTable(initializer().init(conf, layerParamsView, initializeParams));
            layer.setConf(conf);
            return layer;
        }
        ExplicitSequenceLayer layer = explicitRuntime(conf, networkDataType);
        if (listeners != null) {
            layer.setListeners(listeners);
        }
        layer.setIndex(layerIndex);
        layer.setParamsViewArray(layerParamsView);
        layer.setParamTable(initializer().init(conf, layerParamsView, initializeParams));
        layer.setConf(conf);
        return layer;
    }

    @Override
    public void validateInput(org.nd4j.linalg.api.ndarray.INDArray input) {
        if (input.rank() != 3 || input.size(1) != inputSize()) {
            throw new IllegalArgumentException("Layer " + getLayerName() + " (" + getClass().getSimpleName()
                    + ") expects input [mb, " + inputSize() + ", T], got " + java.util.Arrays.toString(input.shape()));
        }
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        if (!(inputType instanceof InputType.InputTypeRecurrent)) {
            throw new IllegalStateException("Layer " + getLayerName() + " (" + getClass().getSimpleName()
                    + ") expects recurrent input [mb, " + inputSize() + ", T], got " + inputType);
        }
        InputType.InputTypeRecurrent recurrent = (InputType.InputTypeRecurrent) inputType;
        if (recurrent.getSize() != inputSize()) {
            throw new IllegalStateException("Layer " + getLayerName() + " (" + getClass().getSimpleName()
                    + ") expects " + inputSize() + " input features, got " + recurrent.getSize());
        }
        return InputType.recurrent(outputSize(), recurrent.getTimeSeriesLength(), RNNFormat.NCW);
    }

    @Override
    public IUpdater getUpdaterByParam(String paramName) {
        return isFrozenParam(paramName) ? new NoOp() : super.getUpdaterByParam(paramName);
    }

    @Override
    public List<Regularization> getRegularizationByParam(String paramName) {
        return skipsWeightDecay(paramName) ? Collections.emptyList() : super.getRegularizationByParam(paramName);
    }

    /** A builder of a dl4j-mtp sequence layer: DL4J's SameDiff layer builder plus the runtime. */
    @SuppressWarnings("unchecked")
    public abstract static class RuntimeBuilder<T extends RuntimeBuilder<T>> extends SameDiffLayer.Builder<T> {
        private LayerRuntime runtime = LayerRuntime.EXPLICIT;

        /** Which computation runs (default {@link LayerRuntime#EXPLICIT}). */
        public T runtime(LayerRuntime runtime) {
            this.runtime = java.util.Objects.requireNonNull(runtime, "runtime");
            return (T) this;
        }
    }
}
