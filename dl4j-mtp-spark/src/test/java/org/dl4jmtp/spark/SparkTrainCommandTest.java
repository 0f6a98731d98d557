package org.dl4jmtp.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.ui.model.storage.FileStatsStorage;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.ui.MtpStatsRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Spark application's command line on embedded local[2]: a corpus directory read through Hadoop, the outputs. */
class SparkTrainCommandTest {

    private static JavaSparkContext spark;

    @BeforeAll
    static void startSpark() {
        spark = LocalSpark.start("SparkTrainCommandTest");
    }

    @AfterAll
    static void stopSpark() {
        spark.stop();
    }

    @Test
    void trainsFromACorpusDirectoryAndWritesTheRunDirectory(@TempDir Path dir) throws Exception {
        Path corpus = Files.createDirectories(dir.resolve("corpus/part"));
        List<Corpus.Document> documents = Corpus.synthetic(4, 3, 3000).documents();
        for (int i = 0; i < documents.size(); i++) {
            Files.writeString(corpus.resolve("doc" + i + ".txt"), documents.get(i).text());
        }
        Files.writeString(corpus.resolve("notes.md"), "not a .txt file: not part of the corpus");
        Path out = dir.resolve("run");

        int code = SparkTrainCommand.commandLine(new SparkTrainCommand(spark)).execute("--config", microConfig(dir),
                "--corpus", dir.resolve("corpus").toUri().toString(), "--out", out.toString(), "--steps", "4",
                "--averaging-frequency", "2", "--workers", "2", "--batch-size", "2", "--seq-len", "32",
                "--eval-every", "4", "--eval-batches", "1", "--checkpoint-every", "4", "--mtp-repeated");

        assertEquals(0, code);
        JsonNode run = new ObjectMapper().readTree(out.resolve("run.json").toFile());
        assertEquals(2, run.get("spark").get("workers").asInt());
        assertEquals(2, run.get("spark").get("averagingFrequency").asInt());
        assertTrue(run.get("mtp").get("useRepeatedLayer").asBoolean());
        assertEquals(dir.resolve("corpus").toUri().toString(), run.get("data").get("corpus").asText());
        assertEquals(4, Files.readAllLines(out.resolve("metrics.jsonl")).size());
        assertTrue(Files.exists(out.resolve("checkpoints/step-000004.zip")));
        assertTrue(Files.exists(out.resolve("hf/model.safetensors")));
        FileStatsStorage stats = new FileStatsStorage(out.resolve("stats.dl4j").toFile());
        try {
            List<String> sessions = stats.listSessionIDs();
            assertEquals(1, sessions.size());
            List<String> types = stats.listTypeIDsForSession(sessions.get(0));
            assertTrue(types.contains(MtpStatsRecord.TYPE_ID), "MTP records " + types);
            assertTrue(types.contains("StatsListener"), "the workers' DL4J stats " + types);
        } finally {
            stats.close();
        }
    }

    /** Shared training through the command line: the stats router stays on the driver, the MTP records are written. */
    @Test
    void sharedTrainingKeepsTheStatsOnTheDriver(@TempDir Path dir) throws Exception {
        Path corpus = Files.writeString(dir.resolve("corpus.txt"), Corpus.synthetic(6, 1, 4000).documents().get(0).text());
        Path out = dir.resolve("run");
        int code = SparkTrainCommand.commandLine(new SparkTrainCommand(spark)).execute("--config", microConfig(dir),
                "--corpus", corpus.toString(), "--out", out.toString(), "--steps", "2", "--averaging-frequency", "2",
                "--workers", "2", "--batch-size", "2", "--seq-len", "32", "--eval-every", "2", "--eval-batches", "1",
                "--training-master", "shared", "--controller-address", "127.0.0.1", "--network-mask", "127.0.0.0/8");
        assertEquals(0, code);
        FileStatsStorage stats = new FileStatsStorage(out.resolve("stats.dl4j").toFile());
        try {
            List<String> sessions = stats.listSessionIDs();
            assertEquals(1, sessions.size());
            assertTrue(stats.listTypeIDsForSession(sessions.get(0)).contains(MtpStatsRecord.TYPE_ID));
        } finally {
            stats.close();
        }
    }

    /** SparkTrainerTest's micro model as an HF config.json. */
    private static String microConfig(Path dir) throws java.io.IOException {
        Path config = dir.resolve("config.json");
        Files.writeString(config, "{\"model_type\": \"nemotron_h\", \"vocab_size\": 256, \"hidden_size\": 32,"
                + "\"hybrid_override_pattern\": \"M*\", \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
                + "\"head_dim\": 16, \"mamba_num_heads\": 2, \"mamba_head_dim\": 16, \"ssm_state_size\": 8,"
                + "\"n_groups\": 1, \"conv_kernel\": 4, \"chunk_size\": 16, \"intermediate_size\": 64,"
                + "\"num_nextn_predict_layers\": 2, \"mtp_hybrid_override_pattern\": \"-\"}");
        return config.toString();
    }

    @Test
    void aMissingCorpusIsAUsageErrorNamingThePath(@TempDir Path dir) {
        StringWriter err = new StringWriter();
        CommandLine cl = SparkTrainCommand.commandLine(new SparkTrainCommand(spark));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute("--corpus", dir.resolve("nowhere").toString(), "--out", dir.resolve("run").toString());
        assertEquals(2, code);
        assertTrue(err.toString().contains("Corpus path does not exist") && err.toString().contains("nowhere"),
                err.toString());
    }
}
