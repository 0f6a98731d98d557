package org.dl4jmtp.block;

import lombok.Data;
import lombok.EqualsAndHashCode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.ExplicitSequenceLayer;
import org.dl4jmtp.layers.SequenceSameDiffLayer;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;
import java.util.Objects;

/**
 * One block of a NemotronV3 model ({@code backbone.layers.{i}}, or an MTP sublayer {@code mtp.layers.{i}}): pre-RMSNorm,
 * the mixer of {@link #blockType}, residual. Input and output [mb, H, T]. Parameter keys are the HF names below the
 * block's prefix ({@code norm.weight}, {@code mixer.in_proj.weight}, ...).
 *
 * <p>Runs {@link ExplicitBlock} (explicit backprop, sparse MoE dispatch) by default, or its SameDiff definition
 * ({@link NemotronV3Block#define}, dense MoE under the top-k mask) with {@code runtime(LayerRuntime.SAMEDIFF)}.
 */
@Data
@EqualsAndHashCode(callSuper = true)
public class NemotronV3BlockLayer extends SequenceSameDiffLayer {

    /** The block's type and the few sizes it needs. */
    private BlockConfig block;

    private NemotronV3BlockLayer() {
        // for JSON deserialisation
    }

    protected NemotronV3BlockLayer(Builder builder) {
        super(builder);
        if (builder.block != null) {
            this.block = builder.block;
        } else {
            this.block = BlockConfig.of(Objects.requireNonNull(builder.blockType, "blockType"),
                    Objects.requireNonNull(builder.config, "config"));
        }
    }

    /** Which mixer this block holds. */
    public BlockType getBlockType() {
        return block.getBlockType();
    }

    private NemotronV3Block definition() {
        return new NemotronV3Block(block);
    }

    @Override
    public long inputSize() {
        return block.getHiddenSize();
    }

    @Override
    public long outputSize() {
        return block.getHiddenSize();
    }

    @Override
    public void defineParameters(SDLayerParams params) {
        definition().defineParameters(params, "");
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params) {
        definition().initializeParameters(params, "");
    }

    @Override
    protected SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params) {
        return definition().define(sd, x, params, "");
    }

    @Override
    protected SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params,
                                        SDVariable documentIds) {
        NemotronV3Block block = definition();
        boolean reads = documentIds != null && block.mixesPositions();
        return block.define(sd, x, params, "", reads ? Documents.segments(sd, documentIds) : null);
    }

    @Override
    protected ExplicitSequenceLayer explicitRuntime(NeuralNetConfiguration conf, DataType dataType) {
        return new ExplicitBlock(conf, dataType);
    }

    @Override
    public boolean routesToExperts() {
        return getBlockType() == BlockType.MOE;
    }

    @Override
    public boolean isFrozenParam(String key) {
        return definition().isFrozen(key);
    }

    @Override
    public boolean skipsWeightDecay(String key) {
        return definition().skipsWeightDecay(key);
    }

    public static class Builder extends SequenceSameDiffLayer.RuntimeBuilder<Builder> {
        private NemotronV3Config config;
        private BlockType blockType;
        private BlockConfig block;

        /** The block's own settings (instead of {@link #config} and {@link #blockType}). */
        public Builder block(BlockConfig block) {
            this.block = block;
            return this;
        }

        /** The model configuration, of which the block keeps the sizes its type needs. */
        public Builder config(NemotronV3Config config) {
            this.config = config;
            return this;
        }

        /** Which mixer this block holds. */
        public Builder blockType(BlockType blockType) {
            this.blockType = blockType;
            return this;
        }

        @Override
        @SuppressWarnings("unchecked")
        public NemotronV3BlockLayer build() {
            return new NemotronV3BlockLayer(this);
        }
    }
}
