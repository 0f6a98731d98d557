package org.dl4jmtp.graph;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.GradientNormalization;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.WorkspaceMode;
import org.deeplearning4j.nn.conf.distribution.NormalDistribution;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.block.NemotronV3BlockLayer;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.layers.LinearLayer;
import org.dl4jmtp.layers.RmsNormLayer;
import org.dl4jmtp.layers.TokenEmbeddingLayer;
import org.dl4jmtp.layers.Runtimes;
import org.dl4jmtp.layers.TimeSliceLayer;
import org.dl4jmtp.mtp.MtpDepthLayer;
import org.dl4jmtp.mtp.MtpInputIdsPreProcessor;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Builds the {@link ComputationGraph} of a NemotronV3 model with optional MTP depths:
 * <pre>
 * input_ids [mb,1,T] ─(MTP: ids rolled by 0..D, [mb,1,(1+D)T])─ backbone.embeddings ─ part 0 ─ backbone.layers.0 … L-1 ─ backbone.norm_f
 * depth p (sublayers i = p·P … p·P+P-1): [enorm(part p+1) ; hnorm(h^p)] → eh_proj → mtp.layers.i … → final_layernorm → h^(p+1)
 *     (h⁰ = norm_f; each module a graph layer named mtp.layers.i.&lt;module&gt;, each sublayer a block layer as in the backbone)
 * repeated (weight-tied): norm_f, parts 1..D → mtp.depth.0 (one MtpDepthLayer applied D times) → h¹…ᴰ
 * [norm_f ; h¹ ; … ; hᴰ] → lm_head.input → lm_head (the caller's output layer: shared head + loss)
 * </pre>
 * Document ids (docs/model.md, "Packed documents") travel as the mask of {@code input_ids}: the embedding
 * ({@link TokenEmbeddingLayer}), the slices and the joins ({@link DocumentMergeVertex}) pass them to every layer.
 * Every join is a native merge vertex feeding single-input layers (M2.1: SameDiffVertex corrupts memory with
 * workspaces on). One graph serves any minibatch size and sequence length. Every dl4j-mtp layer runs the
 * {@link #runtime(LayerRuntime) runtime} chosen here.
 */
public final class NemotronV3GraphBuilder {

    private final NemotronV3Config config;
    private MtpConfig mtp = MtpConfig.disabled();
    private DataType dataType = DataType.FLOAT;
    private long seed = 12345;
    private IUpdater updater = new Adam(3e-4);
    private GradientNormalization gradientNormalization = GradientNormalization.None;
    private double gradientNormalizationThreshold = 1.0;
    private Layer head;
    private LayerRuntime runtime = LayerRuntime.EXPLICIT;

    public NemotronV3GraphBuilder(NemotronV3Config config) {
        this.config = Objects.requireNonNull(config, "config");
        config.validate();
    }

    /** MTP depths; {@link MtpConfig#disabled()} (the default) gives a plain LM. */
    public NemotronV3GraphBuilder mtp(MtpConfig mtp) {
        this.mtp = Objects.requireNonNull(mtp, "mtp");
        return this;
    }

    /** Network data type: FLOAT for training, DOUBLE for parity and gradient checks. */
    public NemotronV3GraphBuilder dataType(DataType dataType) {
        this.dataType = dataType;
        return this;
    }

    /**
     * How every dl4j-mtp layer of the graph computes (blocks, norms, {@code eh_proj}, slices, MTP depths and the loss
     * head): {@link LayerRuntime#EXPLICIT} (default) or {@link LayerRuntime#SAMEDIFF}. Same parameters, same results.
     */
    public NemotronV3GraphBuilder runtime(LayerRuntime runtime) {
        this.runtime = Objects.requireNonNull(runtime, "runtime");
        return this;
    }

    /** Seed of the parameter initialisation. */
    public NemotronV3GraphBuilder seed(long seed) {
        this.seed = seed;
        return this;
    }

    public NemotronV3GraphBuilder updater(IUpdater updater) {
        this.updater = updater;
        return this;
    }

    public NemotronV3GraphBuilder gradientNormalization(GradientNormalization normalization, double threshold) {
        this.gradientNormalization = normalization;
        this.gradientNormalizationThreshold = threshold;
        return this;
    }

    /**
     * The output layer on {@code lm_head.input} [mb, (1+D)·H, T]; it owns {@code lm_head.weight} and the loss
     * (the MTP loss layer of {@code dl4j-mtp-losses}, or any output layer for a plain LM).
     */
    public NemotronV3GraphBuilder head(Layer head) {
        this.head = head;
        return this;
    }

    public ComputationGraphConfiguration buildConfiguration() {
        if (head == null) {
            throw new IllegalStateException("No head: call head(...) with the output layer (e.g. MtpLossLayer)");
        }
        int h = config.getHiddenSize();
        ComputationGraphConfiguration.GraphBuilder g = new NeuralNetConfiguration.Builder()
                .seed(seed)
                .dataType(dataType)
                .updater(updater)
                .gradientNormalization(gradientNormalization)
                .gradientNormalizationThreshold(gradientNormalizationThreshold)
                .trainingWorkspaceMode(WorkspaceMode.ENABLED)
                .inferenceWorkspaceMode(WorkspaceMode.ENABLED)
                .graphBuilder()
                .addInputs(GraphNames.INPUT_IDS);

        int depths = mtp.enabled() ? mtp.getNumLayers() : 0;
        g.addLayer(GraphNames.EMBEDDINGS, TokenEmbeddingLayer.of(new EmbeddingSequenceLayer.Builder()
                .nIn(config.getVocabSize()).nOut(h).hasBias(false)
                .weightInit(new NormalDistribution(0, config.getInitializerRange()))
                .outputDataFormat(RNNFormat.NCW)
                .build(), depths + 1), depths > 0 ? new MtpInputIdsPreProcessor(depths) : null, GraphNames.INPUT_IDS);

        String previous = GraphNames.EMBEDDINGS;
        if (depths > 0) {
            for (int part = 0; part <= depths; part++) {
                g.addLayer(GraphNames.embeddingPart(part), new TimeSliceLayer(GraphNames.embeddingPart(part), h, depths + 1, part),
                        GraphNames.EMBEDDINGS);
            }
            previous = GraphNames.embeddingPart(0);
        }
        List<BlockType> types = config.getLayerTypes();
        for (int i = 0; i < types.size(); i++) {
            g.addLayer(GraphNames.backboneLayer(i), block(types.get(i)), previous);
            previous = GraphNames.backboneLayer(i);
        }
        g.addLayer(GraphNames.NORM_F, rmsNorm(), previous);

        List<String> headInputs = new ArrayList<>();
        headInputs.add(GraphNames.NORM_F);
        if (depths > 0) {
            addMtpDepths(g, depths, headInputs);
        }
        String headInput = GraphNames.NORM_F;
        if (headInputs.size() > 1) {
            g.addVertex(GraphNames.LM_HEAD_INPUT, new DocumentMergeVertex(), headInputs.toArray(new String[0]));
            headInput = GraphNames.LM_HEAD_INPUT;
        }
        g.addLayer(GraphNames.LM_HEAD, head, headInput);
        g.setOutputs(GraphNames.LM_HEAD);
        ComputationGraphConfiguration conf = g.build();
        Runtimes.apply(conf, runtime);
        return conf;
    }

    private Layer block(BlockType type) {
        return new NemotronV3BlockLayer.Builder().config(config).blockType(type).build();
    }

    private RmsNormLayer rmsNorm() {
        return new RmsNormLayer.Builder().size(config.getHiddenSize()).epsilon(config.getLayerNormEpsilon()).build();
    }

    private void addMtpDepths(ComputationGraphConfiguration.GraphBuilder g, int depths, List<String> headInputs) {
        if (mtp.isUseRepeatedLayer()) {
            addRepeatedMtpDepth(g, depths, headInputs);
            return;
        }
        // one graph layer per module, named after it (HF mtp.layers.{i}.*), so that every block type, MoE included,
        // is the same layer as in the backbone
        String hidden = GraphNames.NORM_F;
        List<BlockType> types = mtp.blockTypes();
        for (int p = 0; p < depths; p++) {
            int first = mtp.globalSublayerIndex(p, 0);
            String enorm = GraphNames.mtpModule(first, "enorm");
            String hnorm = GraphNames.mtpModule(first, "hnorm");
            g.addLayer(enorm, rmsNorm(), GraphNames.embeddingPart(p + 1));
            g.addLayer(hnorm, rmsNorm(), hidden);
            g.addVertex(GraphNames.mtpFusionInputOf(first), new DocumentMergeVertex(), enorm, hnorm);  // embedding first
            String previous = GraphNames.mtpModule(first, "eh_proj");
            g.addLayer(previous, new LinearLayer.Builder().nIn(2L * config.getHiddenSize()).nOut(config.getHiddenSize())
                    .std(config.getInitializerRange()).build(), GraphNames.mtpFusionInputOf(first));
            for (int s = 0; s < types.size(); s++) {
                String name = GraphNames.mtpSublayer(mtp.globalSublayerIndex(p, s));
                g.addLayer(name, block(types.get(s)), previous);
                previous = name;
            }
            hidden = GraphNames.mtpHidden(mtp, p);
            g.addLayer(hidden, rmsNorm(), previous);
            headInputs.add(hidden);
        }
    }

    /** The weight-tied depth: one MtpDepthLayer applied D times (DL4J cannot share weights between layers). */
    private void addRepeatedMtpDepth(ComputationGraphConfiguration.GraphBuilder g, int depths, List<String> headInputs) {
        List<String> inputs = new ArrayList<>();
        inputs.add(GraphNames.NORM_F);
        for (int it = 0; it < depths; it++) {
            inputs.add(GraphNames.embeddingPart(it + 1));
        }
        g.addVertex(GraphNames.mtpFusionInput(0), new DocumentMergeVertex(), inputs.toArray(new String[0]));
        g.addLayer(GraphNames.mtpDepth(0), new MtpDepthLayer.Builder()
                .config(config).sublayerTypes(mtp.blockTypes()).iterations(depths).build(),
                GraphNames.mtpFusionInput(0));
        headInputs.add(GraphNames.mtpHidden(mtp, 0));
    }

    /** Builds and initialises the graph. */
    public ComputationGraph build() {
        ComputationGraph graph = new ComputationGraph(buildConfiguration());
        graph.init();
        return graph;
    }
}
