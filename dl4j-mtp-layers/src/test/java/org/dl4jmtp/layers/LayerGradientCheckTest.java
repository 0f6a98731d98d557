package org.dl4jmtp.layers;

import org.deeplearning4j.gradientcheck.GradientCheckUtil;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.dl4jmtp.block.NemotronV3Block;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.graph.NemotronV3GraphBuilder;
import org.dl4jmtp.moe.MoeMixer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DL4J {@link GradientCheckUtil} (double precision, NoOp updater) on NemotronV3 graphs built by
 * {@link NemotronV3GraphBuilder}: one graph per mixer type, LatentMoE, a graph mixing all four block types, and
 * {@link RmsNormLayer} on its own.
 *
 * <p><b>Cost.</b> In M2.1 {@code GradientCheckUtil.GraphConfig}'s {@code subset}/{@code maxPerParam} are ignored
 * (only the MultiLayerNetwork variant honours them), and one score of these SameDiff graphs costs tens of ms, so a
 * full check of every parameter of every graph would take minutes. Hence: the RMSNorm graph and the MLP-block graph
 * (all but the native head's W and b) are checked in full with {@code GraphConfig}; every other graph is checked with
 * {@code MLNConfig.subset(true).maxPerParam(n)} on its MultiLayerNetwork twin, built from the SAME layer
 * configurations as the builder's graph (it is a chain), with the builder graph's parameters copied in and
 * its output asserted equal first. (M2.1 quirk: with subset, a parameter with fewer than maxPerParam values has only
 * its first value checked.) Run with {@code -Ddl4jmtp.fullGradientCheck=true} to check every parameter of every
 * builder graph with {@code GraphConfig} instead (slow).
 *
 * <p>All SameDiff parameters are re-drawn at O(1) scale before checking (the HF init has 0.02-scale weights, unit
 * norms and zero biases, which would make many gradients vanish below {@code minAbsoluteError}). MoE routing is
 * discrete: the tests assert that every token's k-th and (k+1)-th router scores differ by a margin far above the
 * perturbation, so no finite difference crosses a routing boundary.
 */
@ExtendWith(DoublePrecisionSingleThread.class)
class LayerGradientCheckTest {

    private static final boolean FULL = Boolean.getBoolean("dl4jmtp.fullGradientCheck");

    private static final double EPSILON = 1e-6;
    private static final double MAX_REL_ERROR = 1e-5;
    private static final double MIN_ABS_ERROR = 1e-8;
    private static final int H = 8;
    private static final int V = 11;
    private static final int MB = 2;


    // =====================================================================================================
    // configs

    /** H=8, V=11; attention 2 q heads / 1 kv head of dim 4; Mamba nh=2, P=2, N=2, G=1, K=3, chunk 4; MLP 8. */
    private static NemotronV3Config tinyConfig(String pattern) {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(V);
        cfg.setHiddenSize(H);
        cfg.hybridOverridePattern(pattern);
        cfg.setNumAttentionHeads(2);
        cfg.setNumKeyValueHeads(1);
        cfg.setHeadDim(4);
        cfg.setMambaNumHeads(2);
        cfg.setMambaHeadDim(2);
        cfg.setSsmStateSize(2);
        cfg.setNGroups(1);
        cfg.setConvKernel(3);
        cfg.setChunkSize(4);
        cfg.setIntermediateSize(8);
        cfg.setNRoutedExperts(2);
        cfg.setNumExpertsPerTok(1);
        cfg.setMoeIntermediateSize(4);
        cfg.setMoeSharedExpertIntermediateSize(4);
        cfg.setRoutedScalingFactor(2.5);
        cfg.validate();
        return cfg;
    }

    private static RnnOutputLayer head(long nIn) {
        return new RnnOutputLayer.Builder(LossFunctions.LossFunction.MCXENT).activation(Activation.SOFTMAX)
                .nIn(nIn).nOut(V).dataFormat(RNNFormat.NCW).build();
    }

    private static ComputationGraph builderGraph(NemotronV3Config cfg) {
        ComputationGraph graph = new NemotronV3GraphBuilder(cfg).dataType(DataType.DOUBLE).updater(new NoOp())
                .seed(42).head(head(H)).build();
        redrawSameDiffParams(graph, 1234);
        return graph;
    }

    /** Every block/norm parameter at O(1) scale: weights N(0, 0.5²), norm weights 1 + N(0, 0.2²). */
    private static void redrawSameDiffParams(ComputationGraph graph, long seed) {
        Random r = new Random(seed);
        for (org.deeplearning4j.nn.api.Layer layer : graph.getLayers()) {
            if (!(layer.conf().getLayer() instanceof FrozenParams)) {   // our layers (SameDiff and ExplicitBlockLayer)
                continue;
            }
            for (Map.Entry<String, INDArray> e : layer.paramTable().entrySet()) {
                String key = e.getKey();
                INDArray v = layer.getParam(key);
                if (key.endsWith(MoeMixer.CORRECTION_BIAS)) {
                    continue;   // a frozen buffer: keep 0 (its gradient is exactly 0 by design)
                }
                boolean norm = key.endsWith("norm.weight") || key.equals(RmsNormLayer.WEIGHT);
                double scale = key.endsWith(MoeMixer.GATE) ? 2.0 : 0.5;  // well separated router scores
                for (long i = 0; i < v.length(); i++) {
                    double z = r.nextGaussian();
                    v.putScalar(i, norm ? 1 + 0.2 * z : scale * z);
                }
            }
        }
    }

    private static INDArray[] idsAndLabels(int t, long seed) {
        Random r = new Random(seed);
        INDArray ids = Nd4j.create(DataType.DOUBLE, MB, 1, t);
        INDArray labels = Nd4j.zeros(DataType.DOUBLE, MB, V, t);
        for (int b = 0; b < MB; b++) {
            for (int i = 0; i < t; i++) {
                ids.putScalar(b, 0, i, r.nextInt(V));
                labels.putScalar(b, r.nextInt(V), i, 1.0);
            }
        }
        return new INDArray[]{ids, labels};
    }

    // =====================================================================================================
    // checks

    /** Full {@code GraphConfig} check of every parameter of {@code graph} except {@code exclude}. */
    private static boolean fullGraphCheck(ComputationGraph graph, INDArray input, INDArray labels, String... exclude) {
        return GradientCheckUtil.checkGradients(new GradientCheckUtil.GraphConfig().net(graph)
                .inputs(new INDArray[]{input}).labels(new INDArray[]{labels})
                .epsilon(EPSILON).maxRelError(MAX_REL_ERROR).minAbsoluteError(MIN_ABS_ERROR)
                .print(GradientCheckUtil.PrintMode.FAILURES_ONLY).exitOnFirstError(false)
                .excludeParams(exclude.length == 0 ? null : new java.util.HashSet<>(Arrays.asList(exclude))));
    }

    /**
     * The builder graph (a chain when MTP is off) as a MultiLayerNetwork of the same layer configurations, with the
     * graph's parameters; asserts both give the same output.
     */
    private static MultiLayerNetwork twin(ComputationGraph graph, INDArray ids) {
        ComputationGraphConfiguration gconf = graph.getConfiguration();
        List<String> chain = new ArrayList<>();
        String previous = GraphNames.INPUT_IDS;
        while (true) {
            String next = null;
            for (Map.Entry<String, List<String>> e : gconf.getVertexInputs().entrySet()) {
                if (e.getValue().equals(List.of(previous))) {
                    next = e.getKey();
                }
            }
            if (next == null) {
                break;
            }
            chain.add(next);
            previous = next;
        }
        assertEquals(GraphNames.LM_HEAD, chain.get(chain.size() - 1), "not a chain: " + chain);
        assertEquals(gconf.getVertices().size(), chain.size(), "not a chain: " + chain);

        NeuralNetConfiguration.ListBuilder list = new NeuralNetConfiguration.Builder()
                .seed(42).dataType(DataType.DOUBLE).updater(new NoOp()).list();
        for (int i = 0; i < chain.size(); i++) {
            GraphVertex vertex = gconf.getVertices().get(chain.get(i));
            LayerVertex lv = (LayerVertex) vertex;
            Layer layer = lv.getLayerConf().getLayer().clone();
            list.layer(i, layer);
            if (lv.getPreProcessor() != null) {
                list.inputPreProcessor(i, lv.getPreProcessor().clone());
            }
        }
        MultiLayerConfiguration conf = list.build();
        MultiLayerNetwork net = new MultiLayerNetwork(conf);
        net.init();
        for (int i = 0; i < chain.size(); i++) {
            org.deeplearning4j.nn.api.Layer source = graph.getLayer(chain.get(i));
            for (String key : source.paramTable().keySet()) {
                net.getLayer(i).getParam(key).assign(source.getParam(key));
            }
        }
        INDArray expected = graph.outputSingle(ids);
        INDArray actual = net.output(ids);
        assertTrue(expected.equalsWithEps(actual, 1e-12), "MultiLayerNetwork twin differs from the builder graph");
        return net;
    }

    /**
     * The builder graph's gradient check: a subset (≤ maxPerParam values of every parameter) on the twin, or the full
     * GraphConfig check with -Ddl4jmtp.fullGradientCheck=true.
     */
    private static void check(ComputationGraph graph, INDArray ids, INDArray labels, int maxPerParam) {
        boolean ok;
        if (FULL) {
            ok = fullGraphCheck(graph, ids, labels);
        } else {
            MultiLayerNetwork net = twin(graph, ids);
            ok = GradientCheckUtil.checkGradients(new GradientCheckUtil.MLNConfig().net(net).input(ids).labels(labels)
                    .epsilon(EPSILON).maxRelError(MAX_REL_ERROR).minAbsoluteError(MIN_ABS_ERROR)
                    .print(GradientCheckUtil.PrintMode.FAILURES_ONLY).exitOnFirstError(false)
                    .subset(true).maxPerParam(maxPerParam));
        }
        assertTrue(ok, "gradient check failed (set an slf4j binding to see which parameter)");
    }

    /**
     * Asserts that in every MoE block every token's k-th largest biased router score beats the (k+1)-th by at least
     * {@code margin}, so the ±epsilon perturbations of the check cannot change the routing.
     */
    private static void assertNoRoutingTies(ComputationGraph graph, NemotronV3Config cfg, INDArray ids, double margin) {
        Map<String, INDArray> acts = graph.feedForward(new INDArray[]{ids}, false);
        List<BlockType> types = cfg.getLayerTypes();
        int k = cfg.getNumExpertsPerTok();
        int experts = cfg.getNRoutedExperts();
        for (int i = 0; i < types.size(); i++) {
            if (types.get(i) != BlockType.MOE) {
                continue;
            }
            String input = i == 0 ? GraphNames.EMBEDDINGS : GraphNames.backboneLayer(i - 1);
            INDArray x = acts.get(input);                                  // [mb, H, T]
            org.deeplearning4j.nn.api.Layer block = graph.getLayer(GraphNames.backboneLayer(i));
            INDArray normW = block.getParam(NemotronV3Block.NORM);
            INDArray gate = block.getParam(NemotronV3Block.MIXER_PREFIX + MoeMixer.GATE);
            INDArray bias = block.getParam(NemotronV3Block.MIXER_PREFIX + MoeMixer.CORRECTION_BIAS);
            double smallest = Double.POSITIVE_INFINITY;
            for (int b = 0; b < x.size(0); b++) {
                for (int t = 0; t < x.size(2); t++) {
                    double ms = 0;
                    for (int f = 0; f < H; f++) {
                        ms += x.getDouble(b, f, t) * x.getDouble(b, f, t);
                    }
                    double inv = 1 / Math.sqrt(ms / H + cfg.getLayerNormEpsilon());
                    double[] scores = new double[experts];
                    for (int e = 0; e < experts; e++) {
                        double logit = 0;
                        for (int f = 0; f < H; f++) {
                            logit += gate.getDouble(e, f) * x.getDouble(b, f, t) * inv * normW.getDouble(f);
                        }
                        scores[e] = 1 / (1 + Math.exp(-logit)) + bias.getDouble(e);
                    }
                    Arrays.sort(scores);
                    if (k < experts) {
                        smallest = Math.min(smallest, scores[experts - k] - scores[experts - k - 1]);
                    }
                }
            }
            assertTrue(smallest > margin, "block " + i + ": routing near a tie (margin " + smallest
                    + "); change the seed");
        }
    }

    // =====================================================================================================
    // tests

    @Test
    void rmsNormLayer() {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder()
                .dataType(DataType.DOUBLE).updater(new NoOp()).seed(1)
                .graphBuilder()
                .addInputs("in")
                .addLayer("norm", new RmsNormLayer.Builder().size(H).epsilon(1e-5).build(), "in")
                .addLayer("out", head(H), "norm")
                .setOutputs("out")
                .build();
        ComputationGraph graph = new ComputationGraph(conf);
        graph.init();
        redrawSameDiffParams(graph, 5);
        Random r = new Random(6);
        INDArray x = Nd4j.create(DataType.DOUBLE, MB, H, 5);
        for (long i = 0; i < x.length(); i++) {
            x.putScalar(i, r.nextGaussian());
        }
        INDArray labels = idsAndLabels(5, 7)[1];
        assertTrue(fullGraphCheck(graph, x, labels));
    }

    @Test
    void mlpBlockFullGraph() {
        // every parameter of the builder graph with GraphConfig, except the head's W and b (a native DL4J layer whose
        // gradient needs only its forward input); the embedding's gradient checks the block's input gradient
        NemotronV3Config cfg = tinyConfig("-");
        cfg.setIntermediateSize(4);
        ComputationGraph graph = builderGraph(cfg);
        INDArray[] data = idsAndLabels(5, 11);
        assertTrue(fullGraphCheck(graph, data[0], data[1], GraphNames.LM_HEAD + "_W", GraphNames.LM_HEAD + "_b"));
    }

    @Test
    void mambaBlockPartialChunkAndConvK3() {
        // chunk 4, T = 6: one full and one partial chunk; K = 3 causal conv
        NemotronV3Config cfg = tinyConfig("M");
        ComputationGraph graph = builderGraph(cfg);
        INDArray[] data = idsAndLabels(6, 12);
        check(graph, data[0], data[1], 6);
    }

    @Test
    void attentionBlockGqa() {
        NemotronV3Config cfg = tinyConfig("*");
        ComputationGraph graph = builderGraph(cfg);
        INDArray[] data = idsAndLabels(5, 13);
        check(graph, data[0], data[1], 4);
    }

    @Test
    void moeBlockTwoExpertsTop1() {
        NemotronV3Config cfg = tinyConfig("E");
        ComputationGraph graph = builderGraph(cfg);
        INDArray[] data = idsAndLabels(5, 14);
        assertNoRoutingTies(graph, cfg, data[0], 1e-3);
        check(graph, data[0], data[1], 4);
    }

    @Test
    void latentMoeBlockFourExpertsTop2() {
        NemotronV3Config cfg = tinyConfig("E");
        cfg.setNRoutedExperts(4);
        cfg.setNumExpertsPerTok(2);
        cfg.setMoeLatentSize(4);
        cfg.validate();
        ComputationGraph graph = builderGraph(cfg);
        INDArray[] data = idsAndLabels(5, 15);
        assertNoRoutingTies(graph, cfg, data[0], 1e-3);
        check(graph, data[0], data[1], 4);
    }

    @Test
    void moeExpertsThatReceiveNoTokenGetZeroGradient() {
        // the correction bias keeps experts 2 and 3 out of every top-2: their routing weights are exactly 0
        NemotronV3Config cfg = tinyConfig("E");
        cfg.setNRoutedExperts(4);
        cfg.setNumExpertsPerTok(2);
        cfg.validate();
        ComputationGraph graph = builderGraph(cfg);
        org.deeplearning4j.nn.api.Layer block = graph.getLayer(GraphNames.backboneLayer(0));
        block.getParam(NemotronV3Block.MIXER_PREFIX + MoeMixer.CORRECTION_BIAS)
                .assign(Nd4j.createFromArray(0.0, 0.0, -5.0, -5.0));
        INDArray[] data = idsAndLabels(5, 16);
        assertNoRoutingTies(graph, cfg, data[0], 1e-3);
        check(graph, data[0], data[1], 4);

        graph.setInputs(data[0]);
        graph.setLabels(data[1]);
        graph.computeGradientAndScore();
        Map<String, INDArray> gradients = graph.gradient().gradientForVariable();
        String layer = GraphNames.backboneLayer(0) + "_" + NemotronV3Block.MIXER_PREFIX;
        for (int e = 0; e < 4; e++) {
            double up = gradients.get(layer + MoeMixer.expertUp(e)).norm2Number().doubleValue();
            double down = gradients.get(layer + MoeMixer.expertDown(e)).norm2Number().doubleValue();
            if (e < 2) {
                assertTrue(up > 0 && down > 0, "expert " + e + " is routed to and must get a gradient");
            } else {
                assertEquals(0.0, up, 0.0, "expert " + e + " up_proj");
                assertEquals(0.0, down, 0.0, "expert " + e + " down_proj");
            }
        }
    }

    @Test
    void mixedGraphOfAllFourBlockTypes() {
        // Mamba with G = 2 groups (one head per group); MoE 2 experts top-1 (4 experts top-2: see the latent test)
        NemotronV3Config cfg = tinyConfig("M*E-");
        cfg.setNGroups(2);
        cfg.validate();
        ComputationGraph graph = builderGraph(cfg);
        INDArray[] data = idsAndLabels(6, 16);
        assertNoRoutingTies(graph, cfg, data[0], 1e-3);
        check(graph, data[0], data[1], 3);
    }
}
