package org.dl4jmtp.mtp;

import lombok.Data;
import lombok.EqualsAndHashCode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.block.BlockConfig;
import org.dl4jmtp.block.NemotronV3Block;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.ExplicitSequenceLayer;
import org.dl4jmtp.layers.M21Workarounds;
import org.dl4jmtp.layers.ParamKeys;
import org.dl4jmtp.layers.SdMath;
import org.dl4jmtp.layers.SequenceSameDiffLayer;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One physical MTP depth (docs/model.md, "MTP depths") as a single layer: the sublayers of the MTP pattern, each a full
 * NemotronV3 block, with the fusion {@code u = eh_proj([enorm(emb) ; hnorm(h)])} (embedding first) on the first
 * sublayer and {@code final_layernorm} on the last. {@code NemotronV3GraphBuilder} uses it for the weight-tied
 * ("repeated") depth only, which must be one layer (DL4J cannot share weights between layers); other MTP depths are
 * built from one graph layer per module. It runs {@link ExplicitMtpDepth} (explicit backprop, sparse MoE); its
 * SameDiff definition below is the reference that runtime is tested against.
 *
 * <p>Input [mb, (1+k)·H, T] = [h ; emb_1 ; … ; emb_k] (a {@code MergeVertex}): the hidden state entering the first
 * iteration, then the embeddings of the input ids rolled left by 1..k (relative to this layer's first depth).
 * The depth is applied {@link #iterations} = k times, each iteration consuming the previous one's output after
 * {@code final_layernorm}; output [mb, k·H, T] = [h¹ ; … ; hᵏ]. k = 1 is an ordinary depth; k = D with one physical
 * depth is the weight-tied "repeated" MTP layer, whose gradients then accumulate over all D iterations.
 *
 * <p>Parameter keys are {@code {sub}.<HF name>}, e.g. {@code 0.eh_proj.weight}, {@code 1.mixer.gate.weight},
 * {@code 1.final_layernorm.weight}; physical depth p's sublayer s is HF {@code mtp.layers.{p·P+s}}.
 */
@Data
@EqualsAndHashCode(callSuper = true)
public class MtpDepthLayer extends SequenceSameDiffLayer {

    public static final String ENORM = "enorm.weight";
    public static final String HNORM = "hnorm.weight";
    public static final String EH_PROJ = ParamKeys.of("eh_proj.weight");
    public static final String FINAL_LAYERNORM = ParamKeys.of("final_layernorm.weight");

    /** Each sublayer's block settings (the MTP pattern, e.g. {@code *E}). */
    private List<BlockConfig> sublayers;
    private int hiddenSize;
    private double layerNormEpsilon;
    /** Standard deviation of eh_proj's initialisation. */
    private double initializerRange;
    private int iterations = 1;

    private MtpDepthLayer() {
        // for JSON deserialisation
    }

    protected MtpDepthLayer(Builder builder) {
        super(builder);
        NemotronV3Config config = Objects.requireNonNull(builder.config, "config");
        if (builder.sublayerTypes == null || builder.sublayerTypes.isEmpty()) {
            throw new IllegalArgumentException("MTP layer pattern is empty");
        }
        if (builder.iterations < 1) {
            throw new IllegalArgumentException("MtpDepthLayer iterations must be >= 1, got " + builder.iterations);
        }
        this.sublayers = new ArrayList<>();
        for (BlockType type : builder.sublayerTypes) {
            sublayers.add(BlockConfig.of(type, config));
        }
        this.hiddenSize = config.getHiddenSize();
        this.layerNormEpsilon = config.getLayerNormEpsilon();
        this.initializerRange = config.getInitializerRange();
        this.iterations = builder.iterations;
    }

    /** Key prefix of sublayer {@code sub}. */
    public static String sublayerPrefix(int sub) {
        return sub + ".";
    }

    /** The block type of each sublayer. */
    public List<BlockType> sublayerTypes() {
        List<BlockType> types = new ArrayList<>();
        sublayers.forEach(b -> types.add(b.getBlockType()));
        return types;
    }

    private NemotronV3Block sublayer(int sub) {
        return new NemotronV3Block(sublayers.get(sub));
    }

    private int lastSublayer() {
        return sublayers.size() - 1;
    }

    @Override
    public long inputSize() {
        return (long) (1 + iterations) * hiddenSize;
    }

    @Override
    public long outputSize() {
        return (long) iterations * hiddenSize;
    }

    @Override
    public void defineParameters(SDLayerParams params) {
        int h = hiddenSize;
        params.addWeightParam(sublayerPrefix(0) + ENORM, h);
        params.addWeightParam(sublayerPrefix(0) + HNORM, h);
        params.addWeightParam(sublayerPrefix(0) + EH_PROJ, h, 2L * h);
        for (int sub = 0; sub < sublayers.size(); sub++) {
            sublayer(sub).defineParameters(params, sublayerPrefix(sub));
        }
        params.addWeightParam(sublayerPrefix(lastSublayer()) + FINAL_LAYERNORM, h);
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params) {
        params.get(sublayerPrefix(0) + ENORM).assign(1.0);
        params.get(sublayerPrefix(0) + HNORM).assign(1.0);
        // AM: eh_proj ~ N(0, initializer_range) (HF itself has no MTP)
        org.dl4jmtp.layers.ParamInit.normal(params.get(sublayerPrefix(0) + EH_PROJ), initializerRange);
        for (int sub = 0; sub < sublayers.size(); sub++) {
            sublayer(sub).initializeParameters(params, sublayerPrefix(sub));
        }
        params.get(sublayerPrefix(lastSublayer()) + FINAL_LAYERNORM).assign(1.0);
    }

    /** The explicit runtime; {@link #defineSequence} is the reference definition it is tested against. */
    @Override
    protected ExplicitSequenceLayer explicitRuntime(NeuralNetConfiguration conf, DataType dataType) {
        return new ExplicitMtpDepth(conf, dataType);
    }

    @Override
    protected SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params) {
        return defineSequence(sd, x, params, null);
    }

    @Override
    protected SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params,
                                        SDVariable documentIds) {
        boolean reads = documentIds != null && java.util.stream.IntStream.range(0, sublayers.size())
                .anyMatch(sub -> sublayer(sub).mixesPositions());
        SDVariable segments = reads ? Documents.segments(sd, documentIds) : null;
        int h = hiddenSize;
        double eps = layerNormEpsilon;
        String first = sublayerPrefix(0);
        SDVariable hidden = SdMath.sliceLastAxis(sd, x, 3, 0, h);
        List<SDVariable> outputs = new ArrayList<>();
        for (int it = 0; it < iterations; it++) {
            SDVariable embedding = SdMath.sliceLastAxis(sd, x, 3, (long) (1 + it) * h, (long) (2 + it) * h);
            SDVariable fused = sd.concat(2,
                    SdMath.rmsNorm(sd, embedding, params.get(first + ENORM), eps, 3),
                    SdMath.rmsNorm(sd, hidden, params.get(first + HNORM), eps, 3));
            SDVariable u = M21Workarounds.linear3d(sd, fused, params.get(first + EH_PROJ), 2L * h, h);
            for (int sub = 0; sub < sublayers.size(); sub++) {
                u = sublayer(sub).define(sd, u, params, sublayerPrefix(sub), segments);
            }
            hidden = SdMath.rmsNorm(sd, u, params.get(sublayerPrefix(lastSublayer()) + FINAL_LAYERNORM), eps, 3);
            outputs.add(hidden);
        }
        return outputs.size() == 1 ? outputs.get(0) : sd.concat(2, outputs.toArray(new SDVariable[0]));
    }

    @Override
    public boolean routesToExperts() {
        return sublayerTypes().contains(BlockType.MOE);
    }

    @Override
    public boolean isFrozenParam(String key) {
        int dot = key.indexOf('.');
        int sub = Integer.parseInt(key.substring(0, dot));
        return sublayer(sub).isFrozen(key.substring(dot + 1));
    }

    @Override
    public boolean skipsWeightDecay(String key) {
        int dot = key.indexOf('.');
        int sub = Integer.parseInt(key.substring(0, dot));
        return sublayer(sub).skipsWeightDecay(key.substring(dot + 1));
    }

    public static class Builder extends SequenceSameDiffLayer.RuntimeBuilder<Builder> {
        private NemotronV3Config config;
        private List<BlockType> sublayerTypes;
        private int iterations = 1;

        /** The model configuration (the MTP sublayers use the main model's sizes). */
        public Builder config(NemotronV3Config config) {
            this.config = config;
            return this;
        }

        /** The block type of each sublayer (the MTP pattern, e.g. {@code *E}). */
        public Builder sublayerTypes(List<BlockType> sublayerTypes) {
            this.sublayerTypes = sublayerTypes;
            return this;
        }

        /** How many consecutive depths this physical depth computes: 1, or D for a repeated (weight-tied) layer. */
        public Builder iterations(int iterations) {
            this.iterations = iterations;
            return this;
        }

        @Override
        @SuppressWarnings("unchecked")
        public MtpDepthLayer build() {
            return new MtpDepthLayer(this);
        }
    }
}
