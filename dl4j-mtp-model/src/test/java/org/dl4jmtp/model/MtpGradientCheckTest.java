package org.dl4jmtp.model;

import org.deeplearning4j.gradientcheck.GradientCheckUtil;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.block.NemotronV3BlockLayer;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossRuntimeLayer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.NoOp;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Finite-difference gradient checks of whole tiny NemotronV3 + MTP graphs in double precision (NoOp updater), plus
 * plain-value checks of the loss layer's score against a hand computation from the logits.
 *
 * <p>Two complementary checks per graph:
 * <ul>
 *   <li>DL4J's {@link GradientCheckUtil}, element by element, on a selection of MTP-relevant parameters (enorm,
 *       hnorm, final_layernorm, norm_f, Mamba A_log/D/dt_bias, the MoE correction bias, ...). M2.1's
 *       {@code GraphConfig} ignores {@code subset/maxPerParam} (only the MultiLayerNetwork path implements them) and
 *       one forward pass of even these tiny graphs costs tens to hundreds of ms (SameDiff per-op overhead), so a full
 *       element-wise check of ~1–2k parameters does not fit the time budget: the other parameters are excluded there
 *       and covered by</li>
 *   <li>a directional-derivative check of EVERY layer's parameters: for a random unit direction u over the layer's
 *       parameters, (L(θ+εu) − L(θ−εu)) / 2ε must equal ∇L·u to a relative 1e-6 (double precision). A wrong gradient
 *       in any element of any tensor of the layer shows up there with probability 1.</li>
 * </ul>
 * Sizes: H = 8, V = 11, T = 6, mb = 2, a 1–2 layer backbone; parameters get N(0, 0.05²) noise on top of their
 * initialisation so that norm weights, D etc. are not all equal. ND4J runs single-threaded in this class (much
 * faster for these tiny ops on a busy 2-core machine; restored afterwards).
 */
class MtpGradientCheckTest {

    private static final int H = 8;
    private static final int V = 11;
    private static final double EPS = 1e-6;
    private static final double MAX_REL_ERROR = 1e-3;
    private static final double MIN_ABS_ERROR = 1e-8;

    /** Token ids [mb=2, T=6]. */
    private static final double[][] IDS = {{3, 7, 1, 9, 4, 10}, {5, 0, 2, 8, 6, 1}};
    /** Pre-shifted labels [2, 6] with ignored (-100) positions at the start, middle and end. */
    private static final double[][] LABELS = {{7, 1, -100, 4, 10, 2}, {-100, -100, 8, 6, 1, -100}};

    /** Step and relative tolerance of the directional-derivative check. */
    private static final double DIRECTIONAL_EPS = 1e-5;
    private static final double DIRECTIONAL_REL_TOL = 1e-6;

    private static DataType previousDefault;
    private static DataType previousFloat;
    private static int previousThreads;
    private static int previousMasterThreads;

    @BeforeAll
    static void doublePrecision() {
        previousDefault = Nd4j.dataType();
        previousFloat = Nd4j.defaultFloatingPointType();
        Nd4j.setDefaultDataTypes(DataType.DOUBLE, DataType.DOUBLE);
        previousThreads = Nd4j.getEnvironment().maxThreads();
        previousMasterThreads = Nd4j.getEnvironment().maxMasterThreads();
        Nd4j.getEnvironment().setMaxThreads(1);
        Nd4j.getEnvironment().setMaxMasterThreads(1);
    }

    @AfterAll
    static void restorePrecision() {
        Nd4j.setDefaultDataTypes(previousDefault, previousFloat);
        Nd4j.getEnvironment().setMaxThreads(previousThreads);
        Nd4j.getEnvironment().setMaxMasterThreads(previousMasterThreads);
    }

    /** A tiny config; the MTP pattern is also written to the config (as a checkpoint would carry it). */
    static NemotronV3Config tinyConfig(String backbone, String mtpPattern, int physicalDepths) {
        NemotronV3Config c = new NemotronV3Config();
        c.setVocabSize(V);
        c.setHiddenSize(H);
        c.hybridOverridePattern(backbone);
        c.setNumAttentionHeads(2);
        c.setNumKeyValueHeads(1);
        c.setHeadDim(4);
        c.setMambaNumHeads(2);
        c.setMambaHeadDim(4);
        c.setSsmStateSize(4);
        c.setNGroups(1);
        c.setConvKernel(4);
        c.setChunkSize(4);
        c.setIntermediateSize(8);
        c.setNRoutedExperts(4);
        c.setNumExpertsPerTok(2);
        c.setMoeIntermediateSize(4);
        c.setMoeSharedExpertIntermediateSize(4);
        c.setRoutedScalingFactor(2.5);
        c.setInitializerRange(0.2);      // 0.02 makes every non-linearity nearly linear at these sizes
        if (mtpPattern != null) {
            c.mtpHybridOverridePattern(mtpPattern);
            c.setNumNextnPredictLayers(physicalDepths);
        }
        c.validate();
        return c;
    }

    static MtpConfig mtp(int depths, String pattern, boolean repeated, MtpLossNormalization normalization) {
        return MtpConfig.builder().numLayers(depths).layerPattern(pattern).useRepeatedLayer(repeated)
                .lossScalingFactor(0.3).lossNormalization(normalization).build();
    }

    private static ComputationGraph gradientCheckGraph(NemotronV3Config cfg, MtpConfig mtp, long seed) {
        ComputationGraph graph = NemotronV3ForCausalLM.graphBuilder(cfg, mtp)
                .dataType(DataType.DOUBLE).updater(new NoOp()).seed(seed).build();
        perturb(graph, seed);
        return graph;
    }

    /**
     * Small noise on every parameter so that the norm weights (init 1), D (init 1) etc. are not all equal and
     * per-element indexing errors show up.
     */
    private static void perturb(ComputationGraph graph, long seed) {
        INDArray params = graph.params();
        Nd4j.getRandom().setSeed(seed + 1);
        params.addi(Nd4j.randn(DataType.DOUBLE, params.shape()).muli(0.05));
    }

    private static INDArray ids() {
        return Nd4j.createFromArray(IDS).reshape('c', 2, 1, 6);
    }

    private static INDArray labels() {
        return Nd4j.createFromArray(LABELS).reshape('c', 2, 1, 6);
    }

    /**
     * Element-wise {@link GradientCheckUtil} on the parameters with the given HF keys (every other parameter excluded),
     * then the directional-derivative check of every layer.
     */
    private static void assertGradientsPass(ComputationGraph graph, String... elementwiseHfKeys) {
        assertGradientsPass(graph, new MultiDataSet(ids(), labels()), elementwiseHfKeys);
    }

    /** {@link #assertGradientsPass(ComputationGraph, String...)} on {@code data} (its features mask included). */
    private static void assertGradientsPass(ComputationGraph graph, MultiDataSet data, String... elementwiseHfKeys) {
        assertEquals(DataType.DOUBLE, graph.params().dataType());
        Map<String, String> variables = HfStateDictAdapter.dl4jVariableNames(graph);
        Set<String> checked = new HashSet<>();
        for (String hf : elementwiseHfKeys) {
            assertNotNull(variables.get(hf), "no parameter " + hf + " in " + variables.keySet());
            checked.add(variables.get(hf));
        }
        Set<String> exclude = new HashSet<>(graph.paramTable().keySet());
        exclude.removeAll(checked);
        boolean ok = GradientCheckUtil.checkGradients(new GradientCheckUtil.GraphConfig()
                .net(graph)
                .inputs(data.getFeatures())
                .labels(data.getLabels())
                .inputMask(data.getFeaturesMaskArrays())
                .epsilon(EPS)
                .maxRelError(MAX_REL_ERROR)
                .minAbsoluteError(MIN_ABS_ERROR)
                .print(GradientCheckUtil.PrintMode.FAILURES_ONLY)
                .exitOnFirstError(false)
                .excludeParams(exclude));
        assertTrue(ok, "GradientCheckUtil failed for " + checked + " (see the log for the failing elements)");
        assertDirectionalDerivatives(graph, data);
    }

    /**
     * For every layer with parameters: (L(θ+εu) − L(θ−εu)) / 2ε == g·u for a random unit u over its parameters, where
     * L is {@code score()} and g the gradient as the updater sees it (raw gradient / minibatch size).
     */
    private static void assertDirectionalDerivatives(ComputationGraph graph, MultiDataSet data) {
        graph.setInputs(data.getFeatures());
        graph.setLabels(data.getLabels());
        graph.setLayerMaskArrays(data.getFeaturesMaskArrays(), null);
        graph.computeGradientAndScore();
        // DL4J's convention, which GradientCheckUtil checks and fit() relies on: the updater divides the raw gradient
        // of computeGradientAndScore() by the minibatch size, and that must be d score / dθ
        assertTrue(graph.getConfiguration().getDefaultConfiguration().isMiniBatch());
        long minibatch = data.getFeatures(0).size(0);
        List<String> failures = new ArrayList<>();
        Nd4j.getRandom().setSeed(99);
        for (Layer layer : graph.getLayers()) {
            if (layer.numParams() == 0) {
                continue;
            }
            String name = layer.conf().getLayer().getLayerName();
            INDArray params = layer.params();                       // a view of the graph's parameters
            INDArray gradient = layer.getGradientsViewArray().dup().divi(minibatch);
            assertEquals(params.length(), gradient.length(), name);
            INDArray u = Nd4j.randn(DataType.DOUBLE, params.shape());
            u.divi(u.norm2Number());
            INDArray original = params.dup();
            params.assign(original.add(u.mul(DIRECTIONAL_EPS)));
            double plus = graph.score(data, true);
            params.assign(original.sub(u.mul(DIRECTIONAL_EPS)));
            double minus = graph.score(data, true);
            params.assign(original);
            double numerical = (plus - minus) / (2 * DIRECTIONAL_EPS);
            double analytic = gradient.reshape(-1).mul(u.reshape(-1)).sumNumber().doubleValue();
            double error = Math.abs(numerical - analytic);
            String line = String.format("%s (%d params): backprop %.12g, numerical %.12g, |diff| %.3g", name,
                    params.length(), analytic, numerical, error);
            if (!(error <= DIRECTIONAL_REL_TOL * Math.max(Math.abs(numerical), Math.abs(analytic)) + 1e-9)) {
                failures.add(line);
            }
        }
        assertTrue(failures.isEmpty(), "directional derivative mismatch:\n  " + String.join("\n  ", failures));
    }

    /**
     * Packed documents: row 0 holds documents of 2 and 4 tokens, row 1 of 5 and 1 (ids in the input mask and in label
     * channel 1); Mamba2 and attention in the backbone and in both MTP depths.
     */
    @Test
    void packedDocuments() {
        NemotronV3Config cfg = tinyConfig("M*", "M*", 2);
        MtpConfig mtp = mtp(2, "M*", false, MtpLossNormalization.MAIN_LABEL_COUNT);
        ComputationGraph graph = NemotronV3ForCausalLM.graphBuilder(cfg, mtp, true)
                .dataType(DataType.DOUBLE).updater(new NoOp()).seed(43).build();
        perturb(graph, 43);
        INDArray documents = Nd4j.createFromArray(new double[][]{{0, 0, 1, 1, 1, 1}, {5, 5, 5, 5, 5, 2}});
        INDArray labels = Nd4j.zeros(DataType.DOUBLE, 2, 2, 6);
        labels.get(NDArrayIndex.all(), NDArrayIndex.point(0), NDArrayIndex.all()).assign(labels().reshape(2, 6));
        labels.get(NDArrayIndex.all(), NDArrayIndex.point(1), NDArrayIndex.all()).assign(documents);
        MultiDataSet data = new MultiDataSet(new INDArray[]{ids()}, new INDArray[]{labels},
                new INDArray[]{documents}, null);
        assertGradientsPass(graph, data, "backbone.layers.0.mixer.conv1d.weight", "backbone.layers.0.mixer.dt_bias",
                "backbone.layers.1.mixer.k_proj.weight", "mtp.layers.0.mixer.A_log", "mtp.layers.3.mixer.q_proj.weight");
    }

    @Test
    void twoDepthsNotRepeatedWithAttentionAndMoeSublayers() {
        NemotronV3Config cfg = tinyConfig("M*", "*E", 2);
        ComputationGraph graph = gradientCheckGraph(cfg, mtp(2, "*E", false, MtpLossNormalization.MAIN_LABEL_COUNT), 42);
        assertNotNull(graph.getLayer(GraphNames.mtpSublayer(3)), "two physical depths of two sublayers");
        assertTrue(graph.getLayer(GraphNames.mtpSublayer(3)).conf().getLayer() instanceof NemotronV3BlockLayer,
                "an MTP MoE sublayer is the same layer as a backbone MoE block");
        // the correction bias only selects experts: its gradient is exactly zero (numerically too, absent near-ties)
        assertGradientsPass(graph, "mtp.layers.0.enorm.weight", "mtp.layers.2.hnorm.weight",
                "backbone.layers.0.mixer.A_log", "mtp.layers.3.mixer.gate.e_score_correction_bias");
    }

    @Test
    void threeDepthsRepeatedLayer() {
        NemotronV3Config cfg = tinyConfig("M", "*-", 1);
        ComputationGraph graph = gradientCheckGraph(cfg, mtp(3, "*-", true, MtpLossNormalization.MAIN_LABEL_COUNT), 7);
        assertTrue(graph.getConfiguration().getVertices().containsKey(GraphNames.mtpDepth(0)));
        assertFalse(graph.getConfiguration().getVertices().containsKey(GraphNames.mtpDepth(1)), "one physical depth");
        // the tied weights accumulate the gradients of all three iterations
        assertGradientsPass(graph, "mtp.layers.0.hnorm.weight", "mtp.layers.1.final_layernorm.weight",
                "backbone.layers.0.mixer.D");
    }

    @Test
    void oneSublayerMtpPattern() {
        NemotronV3Config cfg = tinyConfig("*", "M", 2);
        ComputationGraph graph = gradientCheckGraph(cfg, mtp(2, "M", false, MtpLossNormalization.MAIN_LABEL_COUNT), 11);
        // P = 1: sublayer 0 owns enorm/hnorm/eh_proj AND final_layernorm
        assertGradientsPass(graph, "mtp.layers.1.enorm.weight", "mtp.layers.1.final_layernorm.weight",
                "mtp.layers.0.mixer.dt_bias", "mtp.layers.0.mixer.D");
    }

    @Test
    void lossLayerMainLabelCountNormalisation() {
        NemotronV3Config cfg = tinyConfig("-", "-", 2);
        ComputationGraph graph = gradientCheckGraph(cfg, mtp(2, "-", false, MtpLossNormalization.MAIN_LABEL_COUNT), 3);
        assertGradientsPass(graph, "backbone.norm_f.weight", "mtp.layers.1.final_layernorm.weight");
    }

    @Test
    void lossLayerPerDepthCountNormalisation() {
        NemotronV3Config cfg = tinyConfig("-", "-", 2);
        ComputationGraph graph = gradientCheckGraph(cfg, mtp(2, "-", false, MtpLossNormalization.PER_DEPTH_COUNT), 3);
        assertGradientsPass(graph, "backbone.norm_f.weight", "mtp.layers.1.final_layernorm.weight");
    }

    // ---------------------------------------------------------------------------------------------------------
    // plain values

    @Test
    void scoreEqualsReportedTotalAndHandComputedLoss() {
        for (MtpLossNormalization norm : MtpLossNormalization.values()) {
            NemotronV3Config cfg = tinyConfig("M*", "*-", 2);
            MtpConfig mtp = mtp(2, "*-", false, norm);
            NemotronV3ForCausalLM model = NemotronV3ForCausalLM.create(cfg, mtp, DataType.DOUBLE, 5);
            perturb(model.graph(), 5);
            INDArray ids = ids().reshape('c', 2, 6);
            INDArray labels = labels().reshape('c', 2, 6);

            Map<String, INDArray> grads = model.gradients(ids, labels);
            double score = model.graph().score();
            MtpLossReport report = ((MtpLossRuntimeLayer) model.graph().getLayer(GraphNames.LM_HEAD)).lastReport();
            assertNotNull(report);
            assertEquals(report.totalLoss(), score, 1e-12, norm + ": score() after computeGradientAndScore");
            assertFalse(grads.isEmpty());

            // independent computation from the forward logits
            NemotronV3ForCausalLM.ForwardResult out = model.forward(ids);
            List<INDArray> logits = new java.util.ArrayList<>();
            logits.add(out.mainLogits());
            logits.addAll(out.mtpLogits());
            assertEquals(3, logits.size());
            long n = countLabels(LABELS, 0);
            assertEquals(8, n);
            assertEquals(n, report.labelCounts()[0]);
            double total = 0;
            for (int d = 0; d <= 2; d++) {
                long nd = countLabels(LABELS, d);
                assertEquals(nd, report.labelCounts()[d], "count of depth " + d);
                double denominator = Math.max(1, d == 0 || norm == MtpLossNormalization.MAIN_LABEL_COUNT ? n : nd);
                double loss = crossEntropySum(logits.get(d), LABELS, d) / denominator;
                assertEquals(loss, report.depthLosses()[d], 1e-10, norm + ": loss of depth " + d);
                total += d == 0 ? loss : loss * 0.3 / 2;
            }
            assertEquals(total, report.totalLoss(), 1e-10, norm + ": total");
            assertEquals(total, model.loss(ids, labels).totalLoss(), 1e-10, norm + ": loss()");
        }
        // the counts differ per depth, so the two normalisations really differ: {8, 7, 6}
        assertEquals(7, countLabels(LABELS, 1));
        assertEquals(6, countLabels(LABELS, 2));
    }

    @Test
    void allLabelsIgnoredGivesZeroLossAndZeroGradients() {
        for (MtpLossNormalization norm : MtpLossNormalization.values()) {
            NemotronV3ForCausalLM model = NemotronV3ForCausalLM.create(tinyConfig("M*", "*-", 2),
                    mtp(2, "*-", false, norm), DataType.DOUBLE, 5);
            INDArray ids = ids().reshape('c', 2, 6);
            INDArray labels = Nd4j.valueArrayOf(new long[]{2, 6}, -100.0, DataType.DOUBLE);
            Map<String, INDArray> grads = model.gradients(ids, labels);
            double score = model.graph().score();
            assertEquals(0.0, score, 0.0, norm + ": score");
            MtpLossReport report = model.loss(ids, labels);
            assertEquals(0.0, report.totalLoss(), 0.0, norm + ": total");
            for (int d = 0; d <= 2; d++) {
                assertEquals(0.0, report.depthLosses()[d], 0.0);
                assertEquals(0, report.labelCounts()[d]);
            }
            for (Map.Entry<String, INDArray> e : grads.entrySet()) {
                INDArray g = e.getValue();
                assertFalse(g.isNaN().any() || g.isInfinite().any(), "non-finite gradient for " + e.getKey());
                assertEquals(0.0, g.amaxNumber().doubleValue(), 0.0, "gradient of " + e.getKey());
            }
        }
    }

    /** Non-ignored targets of depth d: labels[t+d] for t <= T-1-d. */
    private static long countLabels(double[][] labels, int d) {
        long n = 0;
        for (double[] row : labels) {
            for (int t = 0; t + d < row.length; t++) {
                if (row[t + d] >= 0) {
                    n++;
                }
            }
        }
        return n;
    }

    /** Σ CE over the non-ignored depth-d targets; logits [B, T, V]. */
    private static double crossEntropySum(INDArray logits, double[][] labels, int d) {
        double sum = 0;
        for (int b = 0; b < labels.length; b++) {
            for (int t = 0; t + d < labels[b].length; t++) {
                double target = labels[b][t + d];
                if (target < 0) {
                    continue;
                }
                double max = Double.NEGATIVE_INFINITY;
                for (int v = 0; v < V; v++) {
                    max = Math.max(max, logits.getDouble(b, t, v));
                }
                double z = 0;
                for (int v = 0; v < V; v++) {
                    z += Math.exp(logits.getDouble(b, t, v) - max);
                }
                sum += max + Math.log(z) - logits.getDouble(b, t, (int) target);
            }
        }
        return sum;
    }
}
