package org.dl4jmtp.layers.moe;

import lombok.Data;
import lombok.EqualsAndHashCode;
import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.FrozenParams;
import org.dl4jmtp.layers.NemotronV3Block;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.learning.regularization.Regularization;

import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A backbone MoE block ({@code backbone.layers.{i}} of type {@code E}): pre-RMSNorm, MoE mixer, residual; the same
 * math, parameter keys and initialisation as a {@code NemotronV3BlockLayer} of type MOE, but a hand-written layer
 * ({@link MoeBlockRuntimeLayer}) instead of a SameDiff one.
 *
 * <p>Why: M2.1's SameDiff cannot dispatch tokens sparsely (its {@code gather} has no gradient, and
 * {@code dynamic_partition}/{@code dynamic_stitch} leak native memory on every execution), so the SameDiff MoE runs
 * every expert on every token, E/k times the routed-expert FLOPs. This layer runs each expert on its own tokens only,
 * and its explicit backprop reuses the forward pass instead of recomputing it. Input and output [mb, H, T].
 */
@Data
@EqualsAndHashCode(callSuper = true)
public class MoeBlockLayer extends BaseLayer implements FrozenParams {

    private NemotronV3Config config;

    private MoeBlockLayer() {
        // for JSON deserialisation
    }

    protected MoeBlockLayer(Builder builder) {
        super(builder);
        this.config = Objects.requireNonNull(builder.config, "config");
    }

    NemotronV3Block block() {
        return new NemotronV3Block(BlockType.MOE, config);
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
                                                       Collection<TrainingListener> listeners, int layerIndex,
                                                       INDArray layerParamsView, boolean initializeParams,
                                                       DataType networkDataType) {
        MoeBlockRuntimeLayer layer = new MoeBlockRuntimeLayer(conf, networkDataType);
        layer.setListeners(listeners);
        layer.setIndex(layerIndex);
        layer.setParamsViewArray(layerParamsView);
        Map<String, INDArray> params = initializer().init(conf, layerParamsView, initializeParams);
        layer.setParamTable(params);
        layer.setConf(conf);
        return layer;
    }

    @Override
    public ParamInitializer initializer() {
        return MoeBlockParamInitializer.getInstance();
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        if (!(inputType instanceof InputType.InputTypeRecurrent)
                || ((InputType.InputTypeRecurrent) inputType).getSize() != config.getHiddenSize()) {
            throw new IllegalStateException("Layer " + getLayerName() + " (MoeBlockLayer) expects recurrent input [mb, "
                    + config.getHiddenSize() + ", T], got " + inputType);
        }
        return InputType.recurrent(config.getHiddenSize(),
                ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength(), RNNFormat.NCW);
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        getOutputType(-1, inputType);  // validates; the size comes from the config
    }

    @Override
    public InputPreProcessor getPreProcessorForInputType(InputType inputType) {
        return null;
    }

    @Override
    public boolean isPretrainParam(String paramName) {
        return false;
    }

    @Override
    public boolean isFrozenParam(String key) {
        return block().isFrozen(key);
    }

    @Override
    public IUpdater getUpdaterByParam(String paramName) {
        return isFrozenParam(paramName) ? new NoOp() : super.getUpdaterByParam(paramName);
    }

    @Override
    public List<Regularization> getRegularizationByParam(String paramName) {
        return block().skipsWeightDecay(paramName) ? Collections.emptyList() : super.getRegularizationByParam(paramName);
    }

    @Override
    public LayerMemoryReport getMemoryReport(InputType inputType) {
        long params = initializer().numParams(this);
        // per token kept for backprop: normed input, k dispatch rows (input, hidden, output), shared hidden, routed sum
        int k = config.getNumExpertsPerTok();
        long in = config.expertInputSize();
        long perToken = 2L * config.getHiddenSize() + k * (2 * in + config.getMoeIntermediateSize())
                + config.getMoeSharedExpertIntermediateSize() + in;
        long t = Math.max(1, ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength());
        return new LayerMemoryReport.Builder(getLayerName(), MoeBlockLayer.class, inputType,
                getOutputType(-1, inputType))
                .standardMemory(params, params)
                .workingMemory(0, perToken * t, 0, perToken * t)
                .cacheMemory(0, 0)
                .build();
    }

    public static class Builder extends BaseLayer.Builder<Builder> {
        private NemotronV3Config config;

        /** The model configuration (sizes, epsilon, MoE settings). */
        public Builder config(NemotronV3Config config) {
            this.config = config;
            return this;
        }

        @Override
        @SuppressWarnings("unchecked")
        public MoeBlockLayer build() {
            return new MoeBlockLayer(this);
        }
    }
}
