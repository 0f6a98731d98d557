package org.dl4jmtp.block;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.WorkspaceMode;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.DoublePrecisionSingleThread;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.moe.MoeMixer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.lossfunctions.LossFunctions;

import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ExplicitBlock} (explicit backprop; sparse MoE dispatch) against the SameDiff runtime of the same block
 * ({@link NemotronV3BlockLayer}; dense MoE mask) on the same parameters, in double precision: output, score and every
 * parameter gradient (the embedding-free graph's input gradient flows through the block's own parameters' checks).
 * MoE: top-1/top-2/top-3, with and without normalised weights and LatentMoE, a non-zero correction bias. Attention:
 * GQA with 2 and 1 query heads per kv head and MQA, a q width different from H, with biases. MLP: with and without
 * biases. Every mixer at T = 1; every case also compares the block's input gradient. The gradient check of the layers
 * inside the builder's graphs is in {@code LayerGradientCheckTest}.
 */
@ExtendWith(DoublePrecisionSingleThread.class)
class ExplicitBlockTest {

    private static final int H = 8;
    private static final int V = 5;
    private static final int MB = 3;
    private static final int T = 7;

    private static NemotronV3Config mambaConfig(int heads, int groups, int kernel, int chunk, boolean bias,
                                                double[] timeStepLimit) {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(V);
        cfg.setHiddenSize(H);
        cfg.hybridOverridePattern("M");
        cfg.setMambaNumHeads(heads);
        cfg.setMambaHeadDim(2);
        cfg.setSsmStateSize(3);
        cfg.setNGroups(groups);
        cfg.setConvKernel(kernel);
        cfg.setChunkSize(chunk);
        cfg.setUseBias(bias);
        cfg.setUseConvBias(bias);
        cfg.setTimeStepLimit(timeStepLimit);
        cfg.validate();
        return cfg;
    }

    private static NemotronV3Config attentionConfig(int heads, int kvHeads, int headDim, boolean bias) {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(V);
        cfg.setHiddenSize(H);
        cfg.hybridOverridePattern("*");
        cfg.setNumAttentionHeads(heads);
        cfg.setNumKeyValueHeads(kvHeads);
        cfg.setHeadDim(headDim);
        cfg.setAttentionBias(bias);
        cfg.validate();
        return cfg;
    }

    private static NemotronV3Config mlpConfig(boolean bias) {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(V);
        cfg.setHiddenSize(H);
        cfg.hybridOverridePattern("-");
        cfg.setIntermediateSize(6);
        cfg.setMlpBias(bias);
        cfg.validate();
        return cfg;
    }

    private static NemotronV3Config config(int experts, int k, boolean normalize, Integer latent) {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(V);
        cfg.setHiddenSize(H);
        cfg.hybridOverridePattern("E");
        cfg.setNRoutedExperts(experts);
        cfg.setNumExpertsPerTok(k);
        cfg.setNormTopkProb(normalize);
        cfg.setMoeLatentSize(latent);
        cfg.setMoeIntermediateSize(6);
        cfg.setMoeSharedExpertIntermediateSize(5);
        cfg.setRoutedScalingFactor(2.5);
        cfg.validate();
        return cfg;
    }

    private static ComputationGraph graph(Layer block) {
        return graph(block, new NeuralNetConfiguration.Builder().updater(new Adam(1e-2)));
    }

    /** {@code block} and a softmax output layer, in double with workspaces, on {@code base}'s updater settings. */
    private static ComputationGraph graph(Layer block, NeuralNetConfiguration.Builder base) {
        ComputationGraphConfiguration conf = base
                .dataType(DataType.DOUBLE).seed(1)
                .trainingWorkspaceMode(WorkspaceMode.ENABLED).inferenceWorkspaceMode(WorkspaceMode.ENABLED)
                .graphBuilder()
                .addInputs("in")
                .addLayer("block", block, "in")
                .addLayer("out", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MCXENT).activation(Activation.SOFTMAX)
                        .nIn(H).nOut(V).dataFormat(RNNFormat.NCW).build(), "block")
                .setOutputs("out")
                .build();
        ComputationGraph graph = new ComputationGraph(conf);
        graph.init();
        return graph;
    }

    /** The sparse graph and its dense twin, with the same O(1)-scale parameters and a non-zero correction bias. */
    private static ComputationGraph[] pair(NemotronV3Config cfg, long seed) {
        BlockType type = cfg.getLayerTypes().get(0);
        ComputationGraph sparse = graph(new NemotronV3BlockLayer.Builder().config(cfg).blockType(type).runtime(LayerRuntime.EXPLICIT).build());
        ComputationGraph dense = graph(new NemotronV3BlockLayer.Builder().config(cfg).blockType(type).runtime(LayerRuntime.SAMEDIFF).build());
        Random r = new Random(seed);
        for (Map.Entry<String, INDArray> e : sparse.paramTable().entrySet()) {
            INDArray v = e.getValue();
            boolean norm = e.getKey().endsWith(NemotronV3Block.NORM);
            for (long i = 0; i < v.length(); i++) {
                v.putScalar(i, norm ? 1 + 0.2 * r.nextGaussian() : 0.5 * r.nextGaussian());
            }
        }
        assertEquals(sparse.paramTable().keySet(), dense.paramTable().keySet(), "same parameter keys");
        for (Map.Entry<String, INDArray> e : sparse.paramTable().entrySet()) {
            dense.paramTable().get(e.getKey()).assign(e.getValue());
        }
        return new ComputationGraph[]{sparse, dense};
    }

    private static INDArray[] data(long seed) {
        return data(seed, T);
    }

    private static INDArray[] data(long seed, int time) {
        Random r = new Random(seed);
        INDArray x = Nd4j.create(DataType.DOUBLE, MB, H, time);
        INDArray labels = Nd4j.zeros(DataType.DOUBLE, MB, V, time);
        for (long i = 0; i < x.length(); i++) {
            x.putScalar(i, r.nextGaussian());
        }
        for (int b = 0; b < MB; b++) {
            for (int t = 0; t < time; t++) {
                labels.putScalar(b, r.nextInt(V), t, 1.0);
            }
        }
        return new INDArray[]{x, labels};
    }

    private static void assertSameAsDense(NemotronV3Config cfg, long seed) {
        assertSameAsDense(cfg, seed, T);
    }

    /**
     * Output, score and every parameter gradient in a graph, and the block's input gradient (the layer's own backprop
     * for a random output gradient), against the SameDiff block.
     */
    private static void assertSameAsDense(NemotronV3Config cfg, long seed, int time) {
        ComputationGraph[] graphs = pair(cfg, seed);
        INDArray[] data = data(seed + 1, time);
        INDArray expectedOut = graphs[1].feedForward(new INDArray[]{data[0]}, false).get("block");
        INDArray actualOut = graphs[0].feedForward(new INDArray[]{data[0]}, false).get("block");
        assertTrue(expectedOut.equalsWithEps(actualOut, 1e-12), "block output differs from the SameDiff block");
        assertTrue(expectedOut.sub(data[0]).norm2Number().doubleValue() > 1e-3, "the mixer must contribute");

        Gradient[] gradients = new Gradient[2];
        double[] scores = new double[2];
        for (int i = 0; i < 2; i++) {
            graphs[i].setInputs(data[0]);
            graphs[i].setLabels(data[1]);
            graphs[i].computeGradientAndScore();
            gradients[i] = graphs[i].gradient();
            scores[i] = graphs[i].score();
        }
        assertEquals(scores[1], scores[0], 1e-12, "score");
        for (Map.Entry<String, INDArray> e : gradients[1].gradientForVariable().entrySet()) {
            INDArray actual = gradients[0].gradientForVariable().get(e.getKey());
            assertTrue(e.getValue().equalsWithEps(actual, 1e-10),
                    e.getKey() + ": expected " + e.getValue() + " got " + actual);
        }
        assertEquals(gradients[1].gradientForVariable().keySet(), gradients[0].gradientForVariable().keySet());

        INDArray epsilon = Nd4j.randn(seed + 2, new long[]{MB, H, time}).castTo(DataType.DOUBLE);
        INDArray[] inputGradients = new INDArray[2];
        for (int i = 0; i < 2; i++) {
            org.deeplearning4j.nn.api.Layer block = graphs[i].getLayer("block");
            LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();
            block.setInput(data[0], mgr);
            block.activate(true, mgr);
            inputGradients[i] = block.backpropGradient(epsilon, mgr).getSecond().dup();
        }
        assertTrue(inputGradients[1].equalsWithEps(inputGradients[0], 1e-10), "input gradient differs from the SameDiff block");
        assertTrue(inputGradients[1].sub(epsilon).norm2Number().doubleValue() > 1e-6, "the mixer must contribute to it");
    }

    @Test
    void topTwoOfFourNormalised() {
        assertSameAsDense(config(4, 2, true, null), 11);
    }

    /**
     * Group-limited routing: 8 experts in 4 groups of 2, the best 2 groups kept, top-3 among their 4 experts. The
     * runtimes agree on output, score and gradients; and on these inputs the group limit changes the output (same
     * parameters without groups give another one).
     */
    @Test
    void groupLimitedTopThreeOfEight() {
        NemotronV3Config cfg = config(8, 3, true, null);
        cfg.setNGroup(4);
        cfg.setTopkGroup(2);
        cfg.validate();
        assertSameAsDense(cfg, 14);

        INDArray in = data(15, T)[0];
        INDArray grouped = pair(cfg, 14)[0].feedForward(new INDArray[]{in}, false).get("block");
        INDArray plain = pair(config(8, 3, true, null), 14)[0].feedForward(new INDArray[]{in}, false).get("block");
        assertTrue(grouped.sub(plain).amaxNumber().doubleValue() > 1e-6, "the group limit must change some choice");
    }

    @Test
    void topOneOfThree() {
        assertSameAsDense(config(3, 1, true, null), 12);
    }

    @Test
    void topThreeOfFiveUnnormalisedLatent() {
        assertSameAsDense(config(5, 3, false, 4), 13);
    }

    @Test
    void mambaPartialLastChunkTwoHeadsPerGroupWithBiases() {
        // T = 7, Q = 3: chunks of 3, 3 and 1 (padded) steps; K = 3
        assertSameAsDense(mambaConfig(4, 2, 3, 3, true, new double[]{0.0, Double.POSITIVE_INFINITY}), 16);
    }

    @Test
    void mambaOneChunkOneHeadPerGroupClampedTimeStep() {
        // Q = 8 > T: a single padded chunk; K = 4; dt clamped to [0.3, 1.0] (binds for some steps)
        assertSameAsDense(mambaConfig(2, 2, 4, 8, false, new double[]{0.3, 1.0}), 17);
    }

    @Test
    void mambaManyChunks() {
        // Q = 2: four chunks per sequence, the inter-chunk decay matrix does the work
        assertSameAsDense(mambaConfig(2, 1, 2, 2, false, new double[]{0.0, Double.POSITIVE_INFINITY}), 18);
    }

    @Test
    void attentionTwoQueryHeadsPerKvHeadWithBiases() {
        assertSameAsDense(attentionConfig(4, 2, 3, true), 14);
    }

    @Test
    void attentionOneQueryHeadPerKvHead() {
        assertSameAsDense(attentionConfig(2, 2, 4, false), 15);
    }

    @Test
    void singleTimeStepForEveryMixer() {
        assertSameAsDense(mambaConfig(2, 1, 4, 3, true, new double[]{0.0, Double.POSITIVE_INFINITY}), 61, 1);
        assertSameAsDense(attentionConfig(4, 2, 3, true), 62, 1);
        assertSameAsDense(mlpConfig(true), 63, 1);
        assertSameAsDense(config(4, 2, true, null), 64, 1);
    }

    @Test
    void attentionOverSeveralBlocks() {
        // explicit attention blocks of 256: T = 640 (2.5 blocks, GQA) and 257 (a last block of one position, MQA)
        assertSameAsDense(attentionConfig(4, 2, 3, true), 67, 640);
        assertSameAsDense(attentionConfig(4, 1, 3, false), 68, 257);
    }

    @Test
    void attentionMultiQueryOneKvHead() {
        assertSameAsDense(attentionConfig(4, 1, 3, false), 65);
    }

    @Test
    void latentMoeWithNormalisedTopK() {
        assertSameAsDense(config(4, 2, true, 3), 66);
    }

    /** A frozen buffer stays as loaded under Adam with weight decay (no gradient, no decay), as in the SameDiff block. */
    @ParameterizedTest
    @EnumSource(LayerRuntime.class)
    void correctionBiasIsUntouchedByAdamWithWeightDecay(LayerRuntime runtime) {
        NemotronV3Config cfg = config(4, 2, true, null);
        ComputationGraph graph = graph(new NemotronV3BlockLayer.Builder().config(cfg).blockType(BlockType.MOE)
                        .runtime(runtime).build(),
                new NeuralNetConfiguration.Builder().updater(new Adam(1e-1)).weightDecay(0.1));
        String bias = "block_" + NemotronV3Block.MIXER_PREFIX + MoeMixer.CORRECTION_BIAS;
        graph.getParam(bias).assign(Nd4j.createFromArray(0.3, -0.2, 0.1, 0.0));
        INDArray gate = graph.getParam("block_" + NemotronV3Block.MIXER_PREFIX + MoeMixer.GATE).dup();
        INDArray[] data = data(67);
        for (int step = 0; step < 3; step++) {
            graph.fit(new INDArray[]{data[0]}, new INDArray[]{data[1]});
        }
        assertEquals(Nd4j.createFromArray(0.3, -0.2, 0.1, 0.0), graph.getParam(bias));
        assertTrue(gate.sub(graph.getParam("block_" + NemotronV3Block.MIXER_PREFIX + MoeMixer.GATE))
                .amaxNumber().doubleValue() > 1e-3, "the trainable router weights do move");
    }

    @Test
    void mlpWithBiases() {
        assertSameAsDense(mlpConfig(true), 19);
    }

    @Test
    void mlpWithoutBiases() {
        assertSameAsDense(mlpConfig(false), 20);
    }

    @Test
    void trainingStepComputesTheForwardPassOnceAndMatchesDenseAfterUpdates() {
        NemotronV3Config cfg = config(4, 2, true, null);
        ComputationGraph[] graphs = pair(cfg, 21);
        INDArray[] data = data(22);
        NemotronV3BlockLayer explicit = (NemotronV3BlockLayer) graphs[0].getLayer("block").conf().getLayer();
        assertEquals(BlockType.MOE, explicit.getBlockType());
        assertEquals(LayerRuntime.EXPLICIT, explicit.getRuntime());
        for (int step = 0; step < 3; step++) {
            for (ComputationGraph g : graphs) {
                g.fit(new INDArray[]{data[0]}, new INDArray[]{data[1]});
            }
        }
        ExplicitBlock layer = (ExplicitBlock) graphs[0].getLayer("block");
        assertEquals(3, layer.forwardPasses(), "backprop must reuse the training forward pass");
        for (Map.Entry<String, INDArray> e : graphs[1].paramTable().entrySet()) {
            assertTrue(e.getValue().equalsWithEps(graphs[0].paramTable().get(e.getKey()), 1e-9),
                    "after 3 Adam steps: " + e.getKey());
        }
        // the correction bias is a frozen buffer: never updated
        assertEquals(graphs[1].getParam("block_" + NemotronV3Block.MIXER_PREFIX + MoeMixer.CORRECTION_BIAS),
                graphs[0].getParam("block_" + NemotronV3Block.MIXER_PREFIX + MoeMixer.CORRECTION_BIAS));
    }

    @Test
    void backpropWithoutItsForwardPassRecomputesIt() {
        NemotronV3Config cfg = config(4, 2, true, null);
        ComputationGraph[] graphs = pair(cfg, 31);
        INDArray x = data(32)[0];
        INDArray epsilon = Nd4j.rand(DataType.DOUBLE, MB, H, T);
        graphs[0].initGradientsView();
        ExplicitBlock layer = (ExplicitBlock) graphs[0].getLayer("block");
        LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();
        layer.setInput(x, mgr);
        layer.activate(true, mgr);
        INDArray cached = layer.backpropGradient(epsilon, mgr).getSecond().dup();
        INDArray cachedGradient = layer.getGradientsViewArray().dup();

        layer.setInput(x.dup(), mgr);   // a different input array: the cached forward pass must not be used
        long before = layer.forwardPasses();
        INDArray recomputed = layer.backpropGradient(epsilon, mgr).getSecond();
        assertEquals(before + 1, layer.forwardPasses());
        assertTrue(cached.equalsWithEps(recomputed, 1e-14));
        assertTrue(cachedGradient.equalsWithEps(layer.getGradientsViewArray(), 1e-14));
    }

    @Test
    void nonFiniteInputIsAnErrorNotARouting() {
        ComputationGraph graph = pair(config(4, 2, true, null), 41)[0];
        INDArray x = data(42)[0];
        x.putScalar(0, 0, 0, Double.NaN);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> graph.feedForward(new INDArray[]{x}, false));
        assertTrue(e.getMessage().contains("not finite"), e.getMessage());
    }

    @Test
    void wrongInputSizeIsRejected() {
        ComputationGraph graph = pair(config(4, 2, true, null), 51)[0];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> graph.feedForward(new INDArray[]{Nd4j.zeros(DataType.DOUBLE, 2, H + 1, 3)}, false));
        assertTrue(e.getMessage().contains("expects input [mb, " + H + ", T]"), e.getMessage());
    }
}
