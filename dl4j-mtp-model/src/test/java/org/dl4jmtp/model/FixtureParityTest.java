package org.dl4jmtp.model;

import com.fasterxml.jackson.databind.JsonNode;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossReporting;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

import static org.dl4jmtp.model.TinyHybridFixture.maxAbsError;
import static org.dl4jmtp.model.TinyHybridFixture.relativeMaxError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every output, loss and gradient against ../shared/fixtures/tiny-hybrid (computed by the reference in float64), on
 * both runtimes.
 */
class FixtureParityTest {

    /** The expected tensors are float64 results rounded to float32: compare with the README's 1e-6 in double. */
    private static final double DOUBLE_TOL = 1e-6;
    private static final double FLOAT_TOL = 1e-4;

    @ParameterizedTest
    @EnumSource(LayerRuntime.class)
    void doublePrecisionMatchesEveryTensorLossAndGradient(LayerRuntime runtime) throws Exception {
        check(DataType.DOUBLE, runtime, DOUBLE_TOL, 1e-10);
    }

    @ParameterizedTest
    @EnumSource(LayerRuntime.class)
    void floatPrecisionMatchesWithinFloatTolerance(LayerRuntime runtime) throws Exception {
        check(DataType.FLOAT, runtime, FLOAT_TOL, 1e-5);
    }

    private void check(DataType type, LayerRuntime runtime, double tol, double lossTol) throws Exception {
        NemotronV3ForCausalLM model = TinyHybridFixture.load(type, runtime);
        assertEquals(runtime, model.runtime(), "every layer runs the requested runtime");
        JsonNode expected = TinyHybridFixture.expected();
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            INDArray ids = io.get("input_ids");
            INDArray labels = io.get("labels");

            NemotronV3ForCausalLM.ForwardResult out = model.forward(ids);
            assertTrue(maxAbsError(out.mainLogits(), io.get("logits_main")) <= tol, "logits_main");
            assertTrue(maxAbsError(out.hiddenFinal(), io.get("hidden_final")) <= tol, "hidden_final");
            for (int d = 1; d <= 2; d++) {
                assertTrue(maxAbsError(out.mtpLogits().get(d - 1), io.get("logits_mtp_" + d)) <= tol, "logits_mtp_" + d);
                assertTrue(maxAbsError(out.mtpHidden().get(d - 1), io.get("mtp_hidden_" + d)) <= tol, "mtp_hidden_" + d);
            }
            ComputationGraph graph = model.graph();
            Map<String, INDArray> acts = graph.feedForward(new INDArray[]{
                    TokenIds.toGraphInput(ids, 97, type)}, false, false);
            for (int i = 0; i < 6; i++) {
                INDArray hidden = acts.get(GraphNames.backboneLayer(i)).permute(0, 2, 1);
                assertTrue(maxAbsError(hidden, io.get("hidden_after_layer_" + i)) <= tol, "hidden_after_layer_" + i);
            }

            MtpLossReport report = model.loss(ids, labels);
            assertEquals(expected.get("loss_main").asDouble(), report.mainLoss(), lossTol);
            assertEquals(expected.get("mtp_per_depth_losses").get(0).asDouble(), report.depthLosses()[1], lossTol);
            assertEquals(expected.get("mtp_per_depth_losses").get(1).asDouble(), report.depthLosses()[2], lossTol);
            assertEquals(expected.get("mtp_loss").asDouble(), report.mtpLoss(), lossTol);
            assertEquals(expected.get("total_loss").asDouble(), report.totalLoss(), lossTol);
            assertEquals(expected.get("N").asLong(), report.labelCounts()[0]);
            assertEquals(expected.get("mtp_label_counts_per_depth").get(0).asLong(), report.labelCounts()[1]);
            assertEquals(expected.get("mtp_label_counts_per_depth").get(1).asLong(), report.labelCounts()[2]);
            double scored = graph.score(new org.nd4j.linalg.dataset.MultiDataSet(
                    TokenIds.toGraphInput(ids, 97, type), TokenIds.toGraphLabels(labels, 97, type)), false);
            assertEquals(expected.get("total_loss").asDouble(), scored, lossTol, "ComputationGraph.score(MultiDataSet)");

            Map<String, INDArray> grads = model.gradients(ids, labels);
            int checked = 0;
            for (String key : io.keys()) {
                if (key.startsWith("grad.")) {
                    String param = key.substring("grad.".length());
                    INDArray g = grads.get(param);
                    assertTrue(g != null, "no gradient for " + param);
                    double err = relativeMaxError(g, io.get(key));
                    assertTrue(err <= tol, "gradient of " + param + ": relative error " + err);
                    checked++;
                }
            }
            assertEquals(92, checked, "every parameter's gradient is in the fixture");
            assertEquals(expected.get("total_loss").asDouble(), graph.score(), lossTol, "score after backprop");
        }
    }

    /**
     * The per-depth report of a training step (fit: scored inside DL4J's training workspaces, before the update) and
     * of a head input recorded by feedForward (validation), against the reference.
     */
    @ParameterizedTest
    @EnumSource(LayerRuntime.class)
    void lossReportOfTrainingStepAndOfRecordedHeadInputMatches(LayerRuntime runtime) throws Exception {
        JsonNode expected = TinyHybridFixture.expected();
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            INDArray ids = TokenIds.toGraphInput(io.get("input_ids"), 97, DataType.DOUBLE);
            INDArray labels = TokenIds.toGraphLabels(io.get("labels"), 97, DataType.DOUBLE);

            ComputationGraph graph = TinyHybridFixture.load(DataType.DOUBLE, runtime).graph();
            MtpLossReporting lossLayer = (MtpLossReporting) graph.getLayer(GraphNames.LM_HEAD);
            graph.fit(new org.nd4j.linalg.dataset.MultiDataSet(ids, labels));
            assertReportMatches(expected, lossLayer.lastReport(), "fit");
            assertEquals(expected.get("total_loss").asDouble(), graph.score(), 1e-10, "fit: score()");

            graph = TinyHybridFixture.load(DataType.DOUBLE, runtime).graph();
            lossLayer = (MtpLossReporting) graph.getLayer(GraphNames.LM_HEAD);
            INDArray headInput = graph.feedForward(new INDArray[]{ids}, false, false).get(GraphNames.LM_HEAD_INPUT);
            assertReportMatches(expected, lossLayer.evaluate(headInput, labels), "evaluate");
        }
    }

    private static void assertReportMatches(JsonNode expected, MtpLossReport report, String path) {
        assertTrue(report != null, path + ": no report");
        assertEquals(expected.get("loss_main").asDouble(), report.mainLoss(), 1e-10, path + ": main loss");
        for (int d = 1; d <= 2; d++) {
            assertEquals(expected.get("mtp_per_depth_losses").get(d - 1).asDouble(), report.depthLosses()[d], 1e-10,
                    path + ": loss of depth " + d);
            assertEquals(expected.get("mtp_label_counts_per_depth").get(d - 1).asLong(), report.labelCounts()[d],
                    path + ": count of depth " + d);
        }
        assertEquals(expected.get("N").asLong(), report.labelCounts()[0], path + ": N");
        assertEquals(expected.get("mtp_loss").asDouble(), report.mtpLoss(), 1e-10, path + ": MTP loss");
        assertEquals(expected.get("total_loss").asDouble(), report.totalLoss(), 1e-10, path + ": total");
    }

    @Test
    void megatronNormalisationMatches() throws Exception {
        MtpConfig settings = TinyHybridFixture.mtpSettings();
        settings.setLossNormalization(MtpLossNormalization.PER_DEPTH_COUNT);
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.fromPretrained(TinyHybridFixture.dir(),
                NemotronV3ForCausalLM.LoadOptions.defaults().withMtp(settings).withDataType(DataType.DOUBLE));
        JsonNode megatron = TinyHybridFixture.expected().get("megatron_style");
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            MtpLossReport report = model.loss(io.get("input_ids"), io.get("labels"));
            assertEquals(megatron.get("per_depth_losses").get(0).asDouble(), report.depthLosses()[1], 1e-10);
            assertEquals(megatron.get("per_depth_losses").get(1).asDouble(), report.depthLosses()[2], 1e-10);
            assertEquals(megatron.get("mtp_loss").asDouble(), report.mtpLoss(), 1e-10);
            assertEquals(megatron.get("total_loss").asDouble(), report.totalLoss(), 1e-10);
        }
    }
}
