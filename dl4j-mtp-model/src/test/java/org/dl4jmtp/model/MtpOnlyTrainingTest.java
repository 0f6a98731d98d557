package org.dl4jmtp.model;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.layers.LayerRuntime;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.learning.config.Adam;

import java.util.Map;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A graph frozen outside {@code mtp.*}: backprop produces gradients for the MTP layers only (the frozen layers are not
 * backpropagated at all), lm_head's is exactly zero, and the updater holds state for the MTP parameters only.
 */
class MtpOnlyTrainingTest {

    @ParameterizedTest
    @EnumSource(LayerRuntime.class)
    void onlyTheMtpLayersGetGradientsAndOptimizerState(LayerRuntime runtime) throws Exception {
        NemotronV3Config config = NemotronV3Config.fromJson(TinyHybridFixture.dir().resolve("config.json"));
        MtpConfig mtp = TinyHybridFixture.mtpSettings();
        ComputationGraphConfiguration conf = NemotronV3ForCausalLM.graphBuilder(config, mtp).dataType(DataType.DOUBLE)
                .runtime(runtime).updater(new Adam(1e-3)).buildConfiguration();
        MtpOnlyTraining.freezeAllButMtp(conf);
        ComputationGraph graph = new ComputationGraph(conf);
        graph.init();
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            graph.setInputs(TokenIds.toGraphInput(io.get("input_ids", DataType.DOUBLE), 97, DataType.DOUBLE));
            graph.setLabels(TokenIds.toGraphLabels(io.get("labels", DataType.DOUBLE), 97, DataType.DOUBLE));
        }
        graph.computeGradientAndScore();

        TreeSet<String> layers = new TreeSet<>();
        for (Map.Entry<String, INDArray> g : graph.gradient().gradientForVariable().entrySet()) {
            layers.add(g.getKey().substring(0, g.getKey().lastIndexOf('_')));
            if (g.getKey().startsWith("lm_head_")) {
                assertEquals(0.0, g.getValue().amaxNumber().doubleValue(), g.getKey() + ": the frozen head's gradient");
            }
        }
        for (String layer : layers) {
            assertTrue(layer.startsWith("mtp.") || layer.equals("lm_head"), "gradient of frozen " + layer);
        }
        assertTrue(layers.contains("mtp.layers.1") && layers.contains("mtp.layers.0.eh_proj"), layers.toString());
        assertTrue(graph.getFlattenedGradients().amaxNumber().doubleValue() > 0, "the MTP layers have gradients");

        long mtpTrainable = 0;
        for (Layer layer : graph.getLayers()) {
            if (layer.conf().getLayer().getLayerName().startsWith("mtp.")) {
                mtpTrainable += layer.numParams()
                        - (layer.paramTable().containsKey("mixer.gate.e-score-correction-bias") ? 4 : 0);
            }
        }
        graph.getUpdater().update(graph.gradient(), 0, 0, 2, org.deeplearning4j.nn.workspace.LayerWorkspaceMgr.noWorkspaces());
        assertEquals(2 * mtpTrainable, graph.getUpdater().getStateViewArray().length(), "Adam's m and v of mtp.* only");
    }

    @org.junit.jupiter.api.Test
    void aModelWithoutMtpCannotTrainOnlyMtp() throws Exception {
        NemotronV3Config config = NemotronV3Config.fromJson(TinyHybridFixture.dir().resolve("config.json"));
        ComputationGraphConfiguration conf = NemotronV3ForCausalLM.graphBuilder(config, MtpConfig.disabled())
                .buildConfiguration();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MtpOnlyTraining.freezeAllButMtp(conf));
        assertTrue(e.getMessage().contains("no MTP depths"), e.getMessage());
    }
}
