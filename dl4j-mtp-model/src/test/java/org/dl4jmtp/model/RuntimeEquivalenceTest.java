package org.dl4jmtp.model;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.generate.FullRecomputeDecoder;
import org.dl4jmtp.generate.GenerationResult;
import org.dl4jmtp.generate.Sampler;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.layers.ExplicitSequenceLayer;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.layers.RuntimeSelectable;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossReporting;
import org.dl4jmtp.losses.MtpLossRuntimeLayer;
import org.dl4jmtp.losses.SameDiffMtpLoss;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The two runtimes of one model, in double: a graph on {@link LayerRuntime#EXPLICIT} and its twin on
 * {@link LayerRuntime#SAMEDIFF} with the same initial parameters train with the same loss trajectory (20 Adam steps),
 * per-depth losses and final parameters, and decode the same greedy tokens and MTP drafts. The model holds all four
 * block types in the backbone and MoE and attention in the MTP depths, repeated (weight-tied) and not.
 */
class RuntimeEquivalenceTest {

    private static final int STEPS = 20;
    private static final int BATCH = 2;
    private static final int T = 8;

    @BeforeAll
    static void doublePrecision() {
        MtpGradientCheckTest.doublePrecision();
    }

    @AfterAll
    static void restorePrecision() {
        MtpGradientCheckTest.restorePrecision();
    }

    private static NemotronV3ForCausalLM model(NemotronV3Config cfg, MtpConfig mtp, LayerRuntime runtime) {
        ComputationGraph graph = NemotronV3ForCausalLM.graphBuilder(cfg, mtp)
                .dataType(DataType.DOUBLE).seed(17).updater(new Adam(1e-2)).runtime(runtime).build();
        return NemotronV3ForCausalLM.of(cfg, mtp, graph);
    }

    /** Twins: the SameDiff graph takes the explicit graph's parameters (the same initialiser already gives them). */
    private static NemotronV3ForCausalLM[] twins(boolean repeated) {
        NemotronV3Config cfg = MtpGradientCheckTest.tinyConfig("M*-E", "*E", repeated ? 1 : 2);
        MtpConfig mtp = MtpGradientCheckTest.mtp(2, "*E", repeated, MtpLossNormalization.MAIN_LABEL_COUNT);
        NemotronV3ForCausalLM explicit = model(cfg, mtp, LayerRuntime.EXPLICIT);
        NemotronV3ForCausalLM samediff = model(cfg, mtp, LayerRuntime.SAMEDIFF);
        assertEquals(LayerRuntime.EXPLICIT, explicit.runtime());
        assertEquals(LayerRuntime.SAMEDIFF, samediff.runtime());
        assertEquals(explicit.graph().params(), samediff.graph().params(), "one initialisation for both runtimes");
        assertExecutes(explicit.graph(), true);
        assertExecutes(samediff.graph(), false);
        return new NemotronV3ForCausalLM[]{explicit, samediff};
    }

    /** Which computation the instantiated layers really run: ours (explicit) or DL4J's SameDiff layer runtimes. */
    private static void assertExecutes(ComputationGraph graph, boolean explicit) {
        int ours = 0;
        for (Layer layer : graph.getLayers()) {
            if (layer.conf().getLayer() instanceof RuntimeSelectable) {
                ours++;
                boolean runsExplicit = layer instanceof ExplicitSequenceLayer || layer instanceof MtpLossRuntimeLayer;
                // CountingSameDiffLayer: DL4J's SameDiff layer runtime, plus the expert counts of MoE layers
                boolean runsSameDiff = layer.getClass() == org.deeplearning4j.nn.layers.samediff.SameDiffLayer.class
                        || layer.getClass() == org.dl4jmtp.layers.CountingSameDiffLayer.class
                        || layer instanceof SameDiffMtpLoss;
                assertTrue(explicit ? runsExplicit : runsSameDiff,
                        layer.conf().getLayer().getLayerName() + " runs " + layer.getClass().getSimpleName());
            }
        }
        assertTrue(ours >= 10, "the graph's blocks, norms, slices, eh_proj/MTP depth and head: " + ours);
    }

    private static MultiDataSet batch(Random random, int vocab) {
        double[][][] ids = new double[BATCH][1][T];
        double[][][] labels = new double[BATCH][1][T];
        for (int b = 0; b < BATCH; b++) {
            for (int t = 0; t < T; t++) {
                ids[b][0][t] = random.nextInt(vocab);
            }
            for (int t = 0; t < T; t++) {
                labels[b][0][t] = t + 1 < T ? ids[b][0][t + 1] : -100;
            }
        }
        return new MultiDataSet(Nd4j.create(ids), Nd4j.create(labels));
    }

    @ParameterizedTest(name = "repeated MTP layer: {0}")
    @ValueSource(booleans = {false, true})
    void twentyAdamStepsGiveTheSameLossTrajectory(boolean repeated) {
        NemotronV3ForCausalLM[] models = twins(repeated);
        Random random = new Random(repeated ? 5 : 6);
        double firstLoss = Double.NaN;
        double lastLoss = Double.NaN;
        for (int step = 0; step < STEPS; step++) {
            MultiDataSet data = batch(random, models[0].config().getVocabSize());
            double[] scores = new double[2];
            MtpLossReport[] reports = new MtpLossReport[2];
            for (int r = 0; r < 2; r++) {
                ComputationGraph graph = models[r].graph();
                graph.fit(data);
                scores[r] = graph.score();
                reports[r] = ((MtpLossReporting) graph.getLayer(GraphNames.LM_HEAD)).lastReport();
            }
            assertEquals(scores[0], scores[1], 1e-9 * Math.max(1, Math.abs(scores[0])), "loss at step " + step);
            for (int d = 0; d <= 2; d++) {
                assertEquals(reports[0].depthLosses()[d], reports[1].depthLosses()[d], 1e-9,
                        "step " + step + ", loss of depth " + d);
                assertEquals(reports[0].labelCounts()[d], reports[1].labelCounts()[d], "step " + step + ", count " + d);
            }
            firstLoss = step == 0 ? scores[0] : firstLoss;
            lastLoss = scores[0];
        }
        assertTrue(lastLoss < firstLoss, "the model trains: " + firstLoss + " -> " + lastLoss);
        INDArray difference = models[0].graph().params().sub(models[1].graph().params());
        assertTrue(difference.amaxNumber().doubleValue() < 1e-7,
                "parameters after " + STEPS + " steps differ by " + difference.amaxNumber());
    }

    @Test
    void bothRuntimesDecodeTheSameTokensAndDrafts() {
        NemotronV3ForCausalLM[] models = twins(false);
        int[] prompt = {3, 7, 1, 9};
        GenerationResult cached = models[0].generate(prompt, 6, Sampler.greedy());
        GenerationResult samediff = models[1].generate(prompt, 6, Sampler.greedy());
        assertArrayEquals(cached.tokens(), samediff.tokens(), "greedy tokens: explicit cached vs SameDiff recompute");

        GenerationResult explicitDrafts = new FullRecomputeDecoder(models[0]).generateWithDrafts(prompt, 6, Set.of());
        GenerationResult samediffDrafts = new FullRecomputeDecoder(models[1]).generateWithDrafts(prompt, 6, Set.of());
        assertArrayEquals(cached.tokens(), samediffDrafts.tokens());
        assertEquals(explicitDrafts.drafts().size(), samediffDrafts.drafts().size());
        for (int i = 0; i < explicitDrafts.drafts().size(); i++) {
            assertArrayEquals(explicitDrafts.drafts().get(i), samediffDrafts.drafts().get(i), "drafts of step " + i);
        }
    }
}
