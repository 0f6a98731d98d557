package org.dl4jmtp.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.examples.train.CheckpointStore;
import org.dl4jmtp.examples.train.CorpusTrainingData;
import org.dl4jmtp.examples.train.Presets;
import org.dl4jmtp.examples.train.TrainOptions;
import org.dl4jmtp.examples.train.Trainer;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Spark trainer in embedded local mode ({@code local[2]}): learning, outputs, and agreement with {@code train}. */
class SparkTrainerTest {

    private static final PrintStream QUIET = new PrintStream(new ByteArrayOutputStream());
    private static final ObjectMapper JSON = new ObjectMapper();
    private static JavaSparkContext spark;

    @BeforeAll
    static void startSpark() {
        spark = LocalSpark.start("SparkTrainerTest");
    }

    @AfterAll
    static void stopSpark() {
        spark.stop();
    }

    /** Mamba2 + attention backbone, byte vocabulary, MTP "-" (as TrainerTest's). */
    static NemotronV3Config microConfig() {
        return NemotronV3Config.fromJsonString("{\"model_type\": \"nemotron_h\", \"vocab_size\": 256, \"hidden_size\": 32,"
                + "\"hybrid_override_pattern\": \"M*\", \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
                + "\"head_dim\": 16, \"mamba_num_heads\": 2, \"mamba_head_dim\": 16, \"ssm_state_size\": 8,"
                + "\"n_groups\": 1, \"conv_kernel\": 4, \"chunk_size\": 16, \"intermediate_size\": 64,"
                + "\"num_nextn_predict_layers\": 2, \"mtp_hybrid_override_pattern\": \"-\"}");
    }

    /**
     * The tiny preset (Mamba2, attention, MoE; MTP "*E" with 2 depths) on two workers with parameter averaging every
     * 4 steps: the loss and every MTP depth's loss fall, the outputs of {@code train} are there, and the HF export
     * loads with NemotronV3ForCausalLM and computes what the final checkpoint computes.
     */
    @Test
    void theTinyModelLearnsOnTwoWorkersWithParameterAveraging(@TempDir Path dir) throws Exception {
        NemotronV3Config config = Presets.tiny();
        MtpConfig mtp = MtpConfig.fromHf(config);
        TrainOptions options = new TrainOptions(32, 4, 32, 1e-2, 4, 0.1, 1.0, 11, 16, 2, 16, 2, "FLOAT");
        CorpusTrainingData data = new CorpusTrainingData(Corpus.synthetic(3, 4, 4000), new ByteTokenizer(), 0.1,
                options);
        SparkTrainer.Result result = new SparkTrainer(spark, dir, QUIET)
                .train(config, mtp, options, data, SparkSettings.parameterAveraging(2, 4));

        assertEquals(32, result.lastStep());
        List<JsonNode> rows = rows(dir.resolve("metrics.jsonl"));
        assertEquals(32, rows.size());
        for (int i = 0; i < rows.size(); i++) {
            assertEquals(i + 1, rows.get(i).get("step").asInt());
        }
        assertFalls(rows, r -> r.get("loss").asDouble(), "loss");
        assertFalls(rows, r -> r.get("loss_main").asDouble(), "main loss");
        for (int d = 0; d < 2; d++) {
            int depth = d;
            assertFalls(rows, r -> r.get("mtp_losses").get(depth).asDouble(), "MTP depth " + (d + 1) + " loss");
        }
        assertTrue(rows.get(15).has("val_loss_main") && rows.get(31).has("val_loss_main"), "validation at 16 and 32");
        assertTrue(rows.get(31).get("val_loss_main").asDouble() < rows.get(15).get("val_loss_main").asDouble());
        assertTrue(Files.exists(dir.resolve("metrics.png")));
        assertTrue(Files.exists(dir.resolve("checkpoints/step-000016.zip")));
        JsonNode run = JSON.readTree(dir.resolve("run.json").toFile());
        assertEquals("parameter-averaging", run.get("spark").get("trainingMaster").asText());
        assertEquals(32, run.get("training").get("steps").asInt());

        NemotronV3ForCausalLM exported = NemotronV3ForCausalLM.fromPretrained(dir.resolve("hf"),
                NemotronV3ForCausalLM.LoadOptions.defaults().withMtp(mtp));
        ComputationGraph last = CheckpointStore.restore(dir.resolve("checkpoints/step-000032.zip"));
        INDArray ids = data.validation().next().getFeatures(0).get(NDArrayIndex.all(), NDArrayIndex.point(0),
                NDArrayIndex.all());
        NemotronV3ForCausalLM.ForwardResult fromExport = exported.forward(ids);
        NemotronV3ForCausalLM.ForwardResult fromCheckpoint = NemotronV3ForCausalLM.of(config, mtp, last).forward(ids);
        assertTrue(fromCheckpoint.mainLogits().equalsWithEps(fromExport.mainLogits(), 1e-5), "main logits");
        assertEquals(2, fromExport.mtpLogits().size());
        for (int d = 0; d < 2; d++) {
            assertTrue(fromCheckpoint.mtpLogits().get(d).equalsWithEps(fromExport.mtpLogits().get(d), 1e-5),
                    "MTP depth " + (d + 1) + " logits");
        }
    }

    /**
     * One worker, double precision: parameter averaging over one worker changes nothing, so the run is exactly
     * {@code train}'s — the same batches, updates, Adam state across rounds and learning-rate schedule.
     */
    @Test
    void oneWorkerFollowsTheSingleMachineTrainerExactly(@TempDir Path base) throws Exception {
        NemotronV3Config config = microConfig();
        MtpConfig mtp = MtpConfig.fromHf(config);
        TrainOptions options = new TrainOptions(6, 4, 32, 1e-2, 2, 0.1, 1.0, 5, 6, 2, 6, 1, "DOUBLE");
        Corpus corpus = Corpus.synthetic(5, 3, 3000);
        new Trainer(base.resolve("train"), QUIET).train(config, mtp, options,
                new CorpusTrainingData(corpus, new ByteTokenizer(), 0.1, options));
        new SparkTrainer(spark, base.resolve("spark"), QUIET).train(config, mtp, options,
                new CorpusTrainingData(corpus, new ByteTokenizer(), 0.1, options), SparkSettings.parameterAveraging(1, 3));

        List<JsonNode> expected = rows(base.resolve("train/metrics.jsonl"));
        List<JsonNode> actual = rows(base.resolve("spark/metrics.jsonl"));
        assertEquals(6, actual.size());
        for (int i = 0; i < expected.size(); i++) {
            for (String key : List.of("loss", "loss_main", "lr")) {
                assertEquals(expected.get(i).get(key).asDouble(), actual.get(i).get(key).asDouble(), 1e-12,
                        key + " at step " + (i + 1));
            }
            for (int d = 0; d < 2; d++) {
                assertEquals(expected.get(i).get("mtp_losses").get(d).asDouble(),
                        actual.get(i).get("mtp_losses").get(d).asDouble(), 1e-12, "depth " + (d + 1) + " at " + (i + 1));
            }
        }
        assertEquals(expected.get(5).get("val_loss_main").asDouble(), actual.get(5).get("val_loss_main").asDouble(), 1e-12);
    }

    @Test
    void stepsThatAreNoMultipleOfTheAveragingFrequencyAreRefused(@TempDir Path dir) {
        NemotronV3Config config = microConfig();
        TrainOptions options = new TrainOptions(5, 4, 32, 1e-2, 2, 0.1, 1.0, 5, 5, 2, 5, 1, "FLOAT");
        CorpusTrainingData data = new CorpusTrainingData(Corpus.synthetic(5, 3, 3000), new ByteTokenizer(), 0.1, options);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new SparkTrainer(spark, dir, QUIET)
                .train(config, MtpConfig.fromHf(config), options, data, SparkSettings.parameterAveraging(2, 2)));
        assertTrue(e.getMessage().contains("--steps 5") && e.getMessage().contains("--averaging-frequency 2"),
                e.getMessage());
    }

    /** The mean of the last quarter of the rows is below 85% of the mean of the first quarter. */
    private static void assertFalls(List<JsonNode> rows, java.util.function.ToDoubleFunction<JsonNode> value, String what) {
        int quarter = rows.size() / 4;
        double first = rows.subList(0, quarter).stream().mapToDouble(value).average().orElseThrow();
        double last = rows.subList(rows.size() - quarter, rows.size()).stream().mapToDouble(value).average().orElseThrow();
        assertTrue(last < 0.85 * first, what + ": first steps " + first + ", last steps " + last);
    }

    private static List<JsonNode> rows(Path metrics) throws Exception {
        List<JsonNode> rows = new ArrayList<>();
        for (String line : Files.readAllLines(metrics)) {
            rows.add(JSON.readTree(line));
        }
        return rows;
    }
}
