package org.dl4jmtp.examples.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.block.NemotronV3BlockLayer;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.layers.Runtimes;
import org.dl4jmtp.model.GraphZips;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checkpoints written by the trainer at commit afef63f (before the layout by model part and the runtime policy; see
 * {@code src/test/resources/legacy-afef63f/README.md}) restore with their parameters, updater state and iteration
 * count, compute the logits and loss that afef63f computed, run on either runtime, and train on.
 */
class LegacyCheckpointTest {

    private static final double LOGIT_TOL = 1e-4;   // float32 network; the MLP block ran SameDiff at afef63f

    private static Path resource(Path dir, String name) throws Exception {
        Path target = dir.resolve(name);
        try (InputStream in = LegacyCheckpointTest.class.getResourceAsStream("/legacy-afef63f/" + name)) {
            Files.copy(in, target);
        }
        return target;
    }

    private static INDArray graphInput(JsonNode ids) {
        int b = ids.size();
        int t = ids.get(0).size();
        INDArray out = Nd4j.create(DataType.FLOAT, b, 1, t);
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < t; j++) {
                out.putScalar(new long[]{i, 0, j}, ids.get(i).get(j).asDouble());
            }
        }
        return out;
    }

    /** [mb, 2, T]: labels, then document ids (the trainer's loss head takes both). */
    private static INDArray graphLabels(JsonNode labels, JsonNode documents) {
        int b = labels.size();
        int t = labels.get(0).size();
        INDArray out = Nd4j.create(DataType.FLOAT, b, 2, t);
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < t; j++) {
                out.putScalar(new long[]{i, 0, j}, labels.get(i).get(j).asDouble());
                out.putScalar(new long[]{i, 1, j}, documents.get(i).get(j).asDouble());
            }
        }
        return out;
    }

    private static double maxAbsDifference(INDArray actual, JsonNode expectedFlat) {
        INDArray flat = actual.dup('c').reshape(actual.length());
        assertEquals(expectedFlat.size(), flat.length(), "number of logits");
        double max = 0;
        for (int i = 0; i < expectedFlat.size(); i++) {
            max = Math.max(max, Math.abs(flat.getDouble(i) - expectedFlat.get(i).asDouble()));
        }
        return max;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"afef63f-mtp-separate", "afef63f-mtp-repeated"})
    void restoresAndComputesWhatAfef63fComputed(String name, @TempDir Path dir) throws Exception {
        Path zip = resource(dir, name + ".zip");
        JsonNode expected = new ObjectMapper().readTree(
                LegacyCheckpointTest.class.getResourceAsStream("/legacy-afef63f/" + name + ".expected.json"));
        INDArray input = graphInput(expected.get("input_ids"));
        INDArray labels = graphLabels(expected.get("labels"), expected.get("document_ids"));

        ComputationGraph graph = CheckpointStore.restore(zip);
        assertEquals(LayerRuntime.EXPLICIT, Runtimes.of(graph.getConfiguration()), "stored zips run the default");
        assertEquals(expected.get("num_params").asLong(), graph.numParams());
        assertEquals(expected.get("updater_state_length").asLong(), graph.getUpdater().getStateViewArray().length());
        assertEquals(expected.get("iteration_count").asInt(), graph.getConfiguration().getIterationCount());
        long blocks = graph.getConfiguration().getVertices().values().stream()
                .filter(v -> v instanceof LayerVertex
                        && ((LayerVertex) v).getLayerConf().getLayer() instanceof NemotronV3BlockLayer)
                .count();
        assertTrue(blocks >= 4, "the old block classes became NemotronV3BlockLayer (4 in the backbone): " + blocks);

        double logitError = maxAbsDifference(graph.output(false, input)[0], expected.get("logits"));
        assertTrue(logitError <= LOGIT_TOL, "main logits differ from afef63f's by " + logitError);
        assertEquals(expected.get("score").asDouble(), graph.score(new MultiDataSet(input, labels), false), 1e-5);

        ComputationGraph samediff = GraphZips.restore(zip, false, LayerRuntime.SAMEDIFF);
        assertEquals(LayerRuntime.SAMEDIFF, Runtimes.of(samediff.getConfiguration()));
        double samediffError = maxAbsDifference(samediff.output(false, input)[0], expected.get("logits"));
        assertTrue(samediffError <= LOGIT_TOL, "SameDiff runtime: main logits differ by " + samediffError);

        // the restored Adam state and schedule continue: one more step from the stored iteration
        graph.fit(new MultiDataSet(input, labels));
        assertEquals(expected.get("iteration_count").asInt() + 1, graph.getConfiguration().getIterationCount());
        assertTrue(graph.score() < expected.get("score").asDouble(), "one more step on the same batch lowers its loss: "
                + graph.score());
    }
}
