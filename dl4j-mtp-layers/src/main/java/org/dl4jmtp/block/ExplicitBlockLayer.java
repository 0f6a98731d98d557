package org.dl4jmtp.block;

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
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.learning.regularization.Regularization;

import java.util.Collection;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * A NemotronV3 block ({@code x + Mixer(RMSNorm(x))}) of any type (Mamba2, attention, MLP, MoE) computed with ND4J ops and a
 * hand-written backprop ({@link ExplicitBlockRuntimeLayer}) instead of SameDiff: the same math, parameter keys and
 * initialisation as a {@code NemotronV3BlockLayer} of that type, so either can hold the same weights. Input and output
 * [mb, H, T].
 *
 * <p>Why: M2.1's SameDiff layers run their forward pass twice per training step (once more inside backprop), as
 * hundreds of small ops, and SameDiff cannot dispatch MoE tokens sparsely (its {@code gather} has no gradient, and
 * {@code dynamic_partition}/{@code dynamic_stitch} leak native memory on every execution), so a SameDiff MoE runs every
 * expert on every token, E/k times the routed-expert FLOPs. Here each expert runs on its own tokens only and backprop
 * reuses the forward pass.
 */
@Data
@EqualsAndHashCode(callSuper = true)
public class ExplicitBlockLayer extends BaseLayer implements FrozenParams {

    /** The block types this layer computes: all of them. */
    public static final Set<BlockType> SUPPORTED = Collections.unmodifiableSet(EnumSet.allOf(BlockType.class));

    private NemotronV3Config config;
    private BlockType blockType;

    private ExplicitBlockLayer() {
        // for JSON deserialisation
    }

    protected ExplicitBlockLayer(Builder builder) {
        super(builder);
        this.config = Objects.requireNonNull(builder.config, "config");
        this.blockType = Objects.requireNonNull(builder.blockType, "blockType");
    }

    public NemotronV3Block block() {
        return new NemotronV3Block(blockType, config);
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
                                                       Collection<TrainingListener> listeners, int layerIndex,
                                                       INDArray layerParamsView, boolean initializeParams,
                                                       DataType networkDataType) {
        ExplicitBlockRuntimeLayer layer = new ExplicitBlockRuntimeLayer(conf, networkDataType);
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
        return ExplicitBlockParamInitializer.getInstance();
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        if (!(inputType instanceof InputType.InputTypeRecurrent)
                || ((InputType.InputTypeRecurrent) inputType).getSize() != config.getHiddenSize()) {
            throw new IllegalStateException("Layer " + getLayerName() + " (ExplicitBlockLayer) expects recurrent input [mb, "
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
        long t = Math.max(1, ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength());
        long perToken = 2L * config.getHiddenSize();   // kept for backprop: normed input, normalised input
        if (blockType == BlockType.MOE) {               // k dispatch rows (input, hidden, output), shared hidden, routed sum
            long in = config.expertInputSize();
            perToken += config.getNumExpertsPerTok() * (2 * in + config.getMoeIntermediateSize())
                    + config.getMoeSharedExpertIntermediateSize() + in;
        } else if (blockType == BlockType.MLP) {        // relu(up·x)
            perToken += config.getIntermediateSize();
        } else if (blockType == BlockType.ATTENTION) {  // q, k, v, context, attention probabilities
            perToken += 2L * config.queryWidth() + 2L * config.kvWidth() + (long) config.getNumAttentionHeads() * t;
        } else {                                        // conv in/out, gate, x, y, norm; per head: chunk decay and scores
            perToken += 3L * config.convDim() + 6L * config.dInner()
                    + 2L * config.getMambaNumHeads() * (config.getChunkSize() + config.getSsmStateSize());
        }
        return new LayerMemoryReport.Builder(getLayerName(), ExplicitBlockLayer.class, inputType,
                getOutputType(-1, inputType))
                .standardMemory(params, params)
                .workingMemory(0, perToken * t, 0, perToken * t)
                .cacheMemory(0, 0)
                .build();
    }

    public static class Builder extends BaseLayer.Builder<Builder> {
        private NemotronV3Config config;
        private BlockType blockType;

        /** The model configuration (sizes, epsilon, MoE settings). */
        public Builder config(NemotronV3Config config) {
            this.config = config;
            return this;
        }

        /** Which mixer this block holds: one of {@link #SUPPORTED}. */
        public Builder blockType(BlockType blockType) {
            this.blockType = blockType;
            return this;
        }

        @Override
        @SuppressWarnings("unchecked")
        public ExplicitBlockLayer build() {
            return new ExplicitBlockLayer(this);
        }
    }
}
