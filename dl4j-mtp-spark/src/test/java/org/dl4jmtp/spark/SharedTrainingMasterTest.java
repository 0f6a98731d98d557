package org.dl4jmtp.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.api.java.JavaSparkContext;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.examples.train.CorpusTrainingData;
import org.dl4jmtp.examples.train.TrainOptions;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * SharedTrainingMaster (gradient sharing through DL4J's Aeron parameter server, from dl4j-spark-parameterserver
 * 1.0.0-M2) with the M2.1 core in local[2]: it trains the MTP graph. In local mode both tasks feed the one model of
 * the single executor JVM, so a round of 2 × 4 batches makes up to 8 steps of that model (7 were observed: DL4J's
 * shared worker does not promise one update per batch), and the run goes on until it has made 16.
 */
class SharedTrainingMasterTest {

    @Test
    void sharedTrainingTrainsTheMtpModelInLocalMode(@TempDir Path dir) throws Exception {
        JavaSparkContext spark = LocalSpark.start("SharedTrainingMasterTest");
        try {
            NemotronV3Config config = SparkTrainerTest.microConfig();
            MtpConfig mtp = MtpConfig.fromHf(config);
            TrainOptions options = new TrainOptions(16, 4, 32, 1e-2, 2, 0.1, 1.0, 5, 16, 2, 16, 1, "FLOAT");
            CorpusTrainingData data = new CorpusTrainingData(Corpus.synthetic(5, 3, 3000), new ByteTokenizer(), 0.1,
                    options);
            SparkTrainer.Result result = new SparkTrainer(spark, dir, new PrintStream(new ByteArrayOutputStream()))
                    .train(config, mtp, options, data, new SparkSettings(SparkSettings.SHARED, 2, 4, 1e-3, 40123,
                            "127.0.0.1", "127.0.0.0/8"));
            assertTrue(result.lastStep() >= 16 && result.lastStep() < 24, "steps " + result.lastStep());
            List<JsonNode> rows = new ArrayList<>();
            ObjectMapper json = new ObjectMapper();
            for (String line : Files.readAllLines(dir.resolve("metrics.jsonl"))) {
                rows.add(json.readTree(line));
            }
            assertEquals(result.lastStep(), rows.size());
            for (int i = 0; i < rows.size(); i++) {
                assertEquals(i + 1, rows.get(i).get("step").asInt());
            }
            int n = rows.size();
            double first = (rows.get(0).get("loss").asDouble() + rows.get(1).get("loss").asDouble()) / 2;
            double last = (rows.get(n - 2).get("loss").asDouble() + rows.get(n - 1).get("loss").asDouble()) / 2;
            assertTrue(last < 0.9 * first, "loss " + first + " -> " + last);
            for (int d = 0; d < 2; d++) {
                double before = rows.get(0).get("mtp_losses").get(d).asDouble();
                double after = rows.get(n - 1).get("mtp_losses").get(d).asDouble();
                assertTrue(after < before, "MTP depth " + (d + 1) + ": " + before + " -> " + after);
            }
            // the driver's graph holds the trained parameters: they validate better than chance and export to a loadable HF model
            NemotronV3ForCausalLM exported = NemotronV3ForCausalLM.fromPretrained(dir.resolve("hf"),
                    NemotronV3ForCausalLM.LoadOptions.defaults().withMtp(mtp));
            assertEquals(2, exported.mtp().getNumLayers());
            assertTrue(rows.get(n - 1).get("val_loss_main").asDouble() < Math.log(256), "better than uniform");
        } finally {
            spark.stop();
        }
    }
}
