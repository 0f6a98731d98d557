package org.dl4jmtp.losses;

import lombok.Data;
import lombok.EqualsAndHashCode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.deeplearning4j.nn.conf.layers.samediff.SameDiffOutputLayer;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.layers.ParamInit;
import org.dl4jmtp.layers.RuntimeSelectable;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Collection;
import java.util.Map;

/**
 * Output layer of a NemotronV3 graph: owns {@code lm_head.weight} [V, H], shared by the main head and every MTP depth,
 * and computes the total loss of {@link MtpLossMath} (NeMo Automodel normalisation by default).
 *
 * <p>Input [mb, (1+D)·H, T] (main hidden state, then each depth's); labels [mb, 1, T] pre-shifted with -100 = ignore,
 * or [mb, 2, T] with document ids in channel 1 when {@link #documentIdsInLabels}. Activations ({@code output()}) are
 * the main logits [mb, V, T]. DL4J divides an output layer's score, and the gradients before the update, by the
 * minibatch size, so the layer returns {@code mb·total}: {@code score()} is the total loss and the applied gradients
 * are d total / dθ (the raw {@code graph.gradient()}, before the updater's division, is mb times that).
 * After each score computation, {@link MtpLossRuntimeLayer#lastReport()} holds the per-depth losses and counts.
 * D = 0 is a plain causal LM.
 */
@Data
@EqualsAndHashCode(callSuper = true)
public class MtpLossLayer extends SameDiffOutputLayer implements RuntimeSelectable {

    public static final String WEIGHT = "weight";

    private int hiddenSize;
    private int vocabSize;
    private int depths;
    private double lossScalingFactor = 0.1;
    private MtpLossNormalization normalization = MtpLossNormalization.MAIN_LABEL_COUNT;
    private boolean documentIdsInLabels;
    private double initializerRange = 0.02;
    /** Which computation runs; absent in zips written before it existed, which then run EXPLICIT. */
    private LayerRuntime runtime = LayerRuntime.EXPLICIT;
    /**
     * {@code lm_head.weight} frozen ({@code train --train-only mtp}): no updater state, no regularisation, an
     * exactly-zero gradient; the input gradient (into the MTP depths) is still computed.
     */
    private boolean frozenWeight;
    /** Name of the main-logits variable, set when the layer's SameDiff is defined. */
    private String mainLogitsName;

    private MtpLossLayer() {
        // for JSON deserialisation
    }

    protected MtpLossLayer(Builder builder) {
        if (builder.hiddenSize <= 0 || builder.vocabSize <= 0) {
            throw new IllegalArgumentException("MtpLossLayer needs positive hiddenSize and vocabSize, got "
                    + builder.hiddenSize + " and " + builder.vocabSize);
        }
        if (builder.depths < 0 || !(builder.lossScalingFactor >= 0) || Double.isInfinite(builder.lossScalingFactor)) {
            throw new IllegalArgumentException("MtpLossLayer needs depths >= 0 and a finite lossScalingFactor >= 0, got "
                    + builder.depths + " and " + builder.lossScalingFactor);
        }
        this.hiddenSize = builder.hiddenSize;
        this.vocabSize = builder.vocabSize;
        this.depths = builder.depths;
        this.lossScalingFactor = builder.lossScalingFactor;
        this.normalization = builder.normalization;
        this.documentIdsInLabels = builder.documentIdsInLabels;
        this.initializerRange = builder.initializerRange;
        this.runtime = builder.runtime;
    }

    @Override
    public void defineParameters(SDLayerParams params) {
        params.addWeightParam(WEIGHT, vocabSize, hiddenSize);
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params) {
        ParamInit.normal(params.get(WEIGHT), initializerRange);
    }

    @Override
    public SDVariable defineLayer(SameDiff sd, SDVariable input, SDVariable labels, Map<String, SDVariable> params) {
        MtpLossMath.Outputs loss = MtpLossMath.define(sd, input, labels, params.get(WEIGHT), this);
        mainLogitsName = loss.mainLogits.name();
        SDVariable minibatch = sd.sizeAt(input, 0).castTo(input.dataType());
        SDVariable scaled = loss.total.mul(minibatch);
        sd.setLossVariables(scaled);  // the graph also holds the main logits (activations), which are not a loss
        return scaled;
    }

    @Override
    public org.nd4j.linalg.learning.config.IUpdater getUpdaterByParam(String paramName) {
        return frozenWeight ? new org.nd4j.linalg.learning.config.NoOp() : super.getUpdaterByParam(paramName);
    }

    @Override
    public java.util.List<org.nd4j.linalg.learning.regularization.Regularization> getRegularizationByParam(String paramName) {
        return frozenWeight ? java.util.Collections.emptyList() : super.getRegularizationByParam(paramName);
    }

    @Override
    public String activationsVertexName() {
        return mainLogitsName;
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        long t = inputType instanceof InputType.InputTypeRecurrent
                ? ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength() : -1;
        return InputType.recurrent(vocabSize, t);
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf, Collection<TrainingListener> listeners,
                                                       int layerIndex, INDArray layerParamsView, boolean initializeParams,
                                                       DataType networkDataType) {
        org.deeplearning4j.nn.layers.samediff.SameDiffOutputLayer layer = runtime == LayerRuntime.SAMEDIFF
                ? new SameDiffMtpLoss(conf, networkDataType) : new MtpLossRuntimeLayer(conf, networkDataType);
        layer.setIndex(layerIndex);
        layer.setParamsViewArray(layerParamsView);
        layer.setParamTable(initializer().init(conf, layerParamsView, initializeParams));
        layer.setConf(conf);
        return layer;
    }

    /** M2.1's SameDiffOutputLayer has no builder of its own, so this one is standalone. */
    public static class Builder {
        private int hiddenSize;
        private int vocabSize;
        private int depths;
        private double lossScalingFactor = 0.1;
        private MtpLossNormalization normalization = MtpLossNormalization.MAIN_LABEL_COUNT;
        private boolean documentIdsInLabels;
        private double initializerRange = 0.02;
        private LayerRuntime runtime = LayerRuntime.EXPLICIT;

        public Builder hiddenSize(int hiddenSize) {
            this.hiddenSize = hiddenSize;
            return this;
        }

        public Builder vocabSize(int vocabSize) {
            this.vocabSize = vocabSize;
            return this;
        }

        /** D, λ and the normalisation of an MTP configuration (D = 0 when it is disabled). */
        public Builder mtp(MtpConfig mtp) {
            this.depths = mtp.enabled() ? mtp.getNumLayers() : 0;
            this.lossScalingFactor = mtp.getLossScalingFactor();
            this.normalization = mtp.getLossNormalization();
            return this;
        }

        /** Labels carry document ids in channel 1: no depth's target crosses a document boundary. */
        public Builder documentIdsInLabels(boolean documentIdsInLabels) {
            this.documentIdsInLabels = documentIdsInLabels;
            return this;
        }

        /** Standard deviation of the N(0, σ²) init of lm_head.weight. */
        public Builder initializerRange(double initializerRange) {
            this.initializerRange = initializerRange;
            return this;
        }

        /** Which computation runs (default {@link LayerRuntime#EXPLICIT}); the graph builder sets it for the graph. */
        public Builder runtime(LayerRuntime runtime) {
            this.runtime = java.util.Objects.requireNonNull(runtime, "runtime");
            return this;
        }

        public MtpLossLayer build() {
            return new MtpLossLayer(this);
        }
    }
}
