package org.dl4jmtp.examples.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.losses.MtpLossLayer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The trainer end to end on a synthetic corpus: learning, exact resume, NaN stop. Tiny model, seconds per run. */
class TrainerTest {

    private static final PrintStream QUIET = new PrintStream(new ByteArrayOutputStream());

    /** Mamba2 + attention backbone, byte vocabulary, MTP "-" (cheap dense MLP sublayer). */
    static NemotronV3Config microConfig() {
        return NemotronV3Config.fromJsonString("{\"model_type\": \"nemotron_h\", \"vocab_size\": 256, \"hidden_size\": 32,"
                + "\"hybrid_override_pattern\": \"M*\", \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
                + "\"head_dim\": 16, \"mamba_num_heads\": 2, \"mamba_head_dim\": 16, \"ssm_state_size\": 8,"
                + "\"n_groups\": 1, \"conv_kernel\": 4, \"chunk_size\": 16, \"intermediate_size\": 64,"
                + "\"num_nextn_predict_layers\": 2, \"mtp_hybrid_override_pattern\": \"-\"}");
    }

    static TrainOptions options(int steps, int evalEvery, int checkpointEvery, String dtype) {
        return new TrainOptions(steps, 8, 32, 1e-2, 5, 0.1, 1.0, 7, evalEvery, 4, checkpointEvery, 5, dtype);
    }

    @Test
    void learnsTheSyntheticCorpusAndItsMtpDepthsBeatChance(@TempDir Path dir) throws Exception {
        Corpus corpus = Corpus.synthetic(3, 4, 6000);
        TrainOptions options = options(60, 30, 60, "FLOAT");
        CorpusTrainingData data = data(corpus, options);
        NemotronV3Config config = microConfig();
        Trainer.Result result = new Trainer(dir, QUIET).train(config, MtpConfig.fromHf(config), options, data);

        ValidationReport v = result.lastValidation();
        double unigram = data.unigramEntropyNats();
        assertTrue(v.mainLoss() < 0.75 * unigram, "validation loss " + v.mainLoss() + " vs unigram entropy " + unigram);
        // chance for a depth-1 guess: always predicting the most frequent byte
        double chance = mostFrequentTokenShare(corpus);
        assertTrue(v.accuracyVsLabels()[1] > chance + 0.05, "MTP depth-1 accuracy " + v.accuracyVsLabels()[1] + " vs " + chance);
        assertTrue(v.simulatedAcceptLength() > 1.0);
        assertTrue(Files.exists(dir.resolve("metrics.png")));
        assertTrue(Files.exists(dir.resolve("hf/model.safetensors")));
        assertEquals(60, Files.readAllLines(dir.resolve("metrics.jsonl")).size());

        // the training data's labels carry document ids: the head reads them (no MTP target crosses a document)
        ComputationGraph saved = CheckpointStore.restore(new CheckpointStore(dir, 5).latest().orElseThrow());
        MtpLossLayer head = (MtpLossLayer) saved.getLayer(GraphNames.LM_HEAD).conf().getLayer();
        assertTrue(head.isDocumentIdsInLabels(), "the trainer's loss head reads the document-id channel");
    }

    @Test
    void packedDocumentsAreIsolatedUnlessTurnedOff() {
        Corpus corpus = Corpus.synthetic(5, 3, 3000);
        TrainOptions isolated = options(2, 2, 2, "FLOAT");
        assertTrue(isolated.documentIsolation(), "isolation is the default");
        MultiDataSet batch = data(corpus, isolated).training(0).next();
        INDArray documents = batch.getLabels(0).get(NDArrayIndex.all(), NDArrayIndex.point(1), NDArrayIndex.all());
        assertNotNull(batch.getFeaturesMaskArrays(), "the document ids are the input mask");
        assertEquals(documents, batch.getFeaturesMaskArray(0));
        assertTrue(documents.maxNumber().doubleValue() > documents.minNumber().doubleValue(),
                "the batch packs more than one document");

        TrainOptions open = isolated.withDocumentIsolation(false);
        assertNull(data(corpus, open).training(0).next().getFeaturesMaskArrays(), "--no-doc-isolation: no mask");
    }

    @Test
    void anInterruptedAndResumedRunFollowsTheSameTrajectoryExactlyInDouble(@TempDir Path base) throws Exception {
        Corpus corpus = Corpus.synthetic(5, 3, 3000);
        TrainOptions options = options(6, 3, 3, "DOUBLE");
        NemotronV3Config config = microConfig();
        MtpConfig mtp = MtpConfig.fromHf(config);

        Path straight = base.resolve("straight");
        new Trainer(straight, QUIET).train(config, mtp, options, data(corpus, options));

        Path interrupted = base.resolve("interrupted");
        Trainer.Result stopped = trainStoppedAfter(3, interrupted, config, mtp, options, corpus);   // as a Ctrl-C would
        assertTrue(stopped.interrupted());
        assertEquals(3, stopped.lastStep());
        new Trainer(interrupted, QUIET).resume(data(corpus, options));

        List<Double> expected = losses(straight);
        List<Double> actual = losses(interrupted);
        assertEquals(6, expected.size());
        assertEquals(expected, actual, "loss trajectory of the resumed run");
    }

    /**
     * A damaged newest checkpoint (truncated, as by a copy that ran out of space) and a damaged run.json: resume names
     * both, sets the checkpoint aside, restores run.json from the copy in the previous checkpoint and continues from
     * there onto the uninterrupted trajectory.
     */
    @Test
    void resumeFallsBackFromADamagedCheckpointAndRestoresADamagedRunFile(@TempDir Path base) throws Exception {
        Corpus corpus = Corpus.synthetic(5, 3, 3000);
        TrainOptions options = options(6, 3, 2, "DOUBLE");
        NemotronV3Config config = microConfig();
        MtpConfig mtp = MtpConfig.fromHf(config);
        Path straight = base.resolve("straight");
        new Trainer(straight, QUIET).train(config, mtp, options, data(corpus, options));

        Path run = base.resolve("run");
        trainStoppedAfter(4, run, config, mtp, options, corpus);                     // checkpoints 2 and 4
        Path newest = run.resolve("checkpoints/step-000004.zip");
        byte[] bytes = Files.readAllBytes(newest);
        Files.write(newest, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        Files.writeString(run.resolve("run.json"), "{\"config\": {\"hidden_si");

        ByteArrayOutputStream messages = new ByteArrayOutputStream();
        Trainer resumed = new Trainer(run, new PrintStream(messages, true));
        Trainer.ResumePoint point = resumed.prepareResume();
        String log = messages.toString();
        assertEquals(2, point.step(), log);
        assertTrue(log.contains(newest.toString()) && log.contains("unreadable"), log);
        assertTrue(Files.exists(run.resolve("checkpoints/step-000004.zip.unreadable")), "set aside, not deleted");
        assertTrue(log.contains(run.resolve("run.json") + " is damaged") && log.contains("step-000002.zip"), log);
        assertEquals(options, resumed.readRunFile().options(), "run.json restored");
        resumed.resume(point, data(corpus, options));

        assertEquals(losses(straight), losses(run), "loss trajectory after the fallback");
    }

    /** Outputs get the permissions of any new file of the user (not createTempFile's owner-only 0600). */
    @Test
    void checkpointsAndExportsHaveTheUsersFilePermissions(@TempDir Path dir) throws Exception {
        Corpus corpus = Corpus.synthetic(5, 3, 3000);
        TrainOptions options = options(2, 2, 2, "FLOAT");
        NemotronV3Config config = microConfig();
        new Trainer(dir, QUIET).train(config, MtpConfig.fromHf(config), options,
                data(corpus, options));
        var expected = Files.getPosixFilePermissions(Files.writeString(dir.resolve("plain.txt"), "x"));
        for (String output : List.of("run.json", "metrics.jsonl", "metrics.png", "checkpoints/step-000002.zip",
                "hf/model.safetensors", "hf/config.json")) {
            assertEquals(expected, Files.getPosixFilePermissions(dir.resolve(output)), output);
        }
    }

    @Test
    void theHfExportIsWrittenInTheSaveDTypeAndRoundTripsBitExactly(@TempDir Path dir) throws Exception {
        Corpus corpus = Corpus.synthetic(5, 3, 3000);
        TrainOptions options = options(2, 2, 2, "FLOAT");
        NemotronV3Config config = microConfig();
        new Trainer(dir, QUIET).saveDType(org.dl4jmtp.io.SafetensorsDType.BF16).train(config,
                MtpConfig.fromHf(config), options, data(corpus, options));
        Path hf = dir.resolve("hf");
        try (var ckpt = org.dl4jmtp.io.SafetensorsCheckpoint.open(hf)) {
            assertTrue(ckpt.size() > 10);
            for (String key : ckpt.keys()) {
                assertEquals(org.dl4jmtp.io.SafetensorsDType.BF16, ckpt.info(key).dtype(), key);
            }
        }
        // loaded and saved again with the defaults (source dtypes): the same bytes
        var model = org.dl4jmtp.model.NemotronV3ForCausalLM.fromPretrained(hf,
                org.dl4jmtp.model.NemotronV3ForCausalLM.LoadOptions.defaults());
        Path again = dir.resolve("again");
        model.save(again, true);
        assertTrue(java.util.Arrays.equals(Files.readAllBytes(hf.resolve("model.safetensors")),
                Files.readAllBytes(again.resolve("model.safetensors"))));
        assertThrows(IllegalArgumentException.class,
                () -> new Trainer(dir, QUIET).saveDType(org.dl4jmtp.io.SafetensorsDType.I64));
    }

    @Test
    void resumeOfADirectoryThatIsNoRunSaysSo(@TempDir Path dir) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Trainer(dir, QUIET).prepareResume());
        assertTrue(e.getMessage().contains("no run.json in " + dir), e.getMessage());
    }

    @Test
    void twoReplicasFollowTheSameTrajectoryInDouble(@TempDir Path base) throws Exception {
        Corpus corpus = Corpus.synthetic(6, 3, 3000);
        TrainOptions options = options(4, 2, 4, "DOUBLE");
        NemotronV3Config config = microConfig();
        MtpConfig mtp = MtpConfig.fromHf(config);
        Path serial = base.resolve("serial");
        new Trainer(serial, QUIET).train(config, mtp, options, data(corpus, options));
        Path parallel = base.resolve("parallel");
        new Trainer(parallel, QUIET).replicas(2)
                .train(config, mtp, options, data(corpus, options));

        List<Double> expected = losses(serial);
        List<Double> actual = losses(parallel);
        assertEquals(4, actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i), actual.get(i), 1e-12, "loss of step " + (i + 1));
        }
    }

    @Test
    void aNanLossStopsWithTheStepAndKeepsTheLastGoodCheckpoint(@TempDir Path dir) throws Exception {
        Corpus corpus = Corpus.synthetic(9, 3, 3000);
        TrainOptions options = options(10, 100, 3, "FLOAT");
        NemotronV3Config config = microConfig();
        Trainer trainer = new Trainer(dir, QUIET);
        trainer.addListener(new BaseTrainingListener() {
            @Override
            public void iterationDone(Model model, int iteration, int epoch) {
                if (iteration == 3) {          // corrupt the weights after update 4: the loss of step 5 is NaN
                    ((ComputationGraph) model).getLayer("backbone.norm_f").getParam("weight").assign(Double.NaN);
                }
            }
        });
        Trainer.TrainingDivergedException e = assertThrows(Trainer.TrainingDivergedException.class, () ->
                trainer.train(config, MtpConfig.fromHf(config), options, data(corpus, options)));
        assertTrue(e.getMessage().contains("at step 5"), e.getMessage());
        assertTrue(e.getMessage().contains("step-000003.zip"), e.getMessage());
        ComputationGraph restored = CheckpointStore.restore(dir.resolve("checkpoints/step-000003.zip"));
        assertTrue(Double.isFinite(restored.params().sumNumber().doubleValue()), "the last good checkpoint holds no NaN");
        assertEquals(1, Files.list(dir.resolve("checkpoints")).count(), "no checkpoint written after the NaN");
    }

    /** Starts a run and stops it after {@code steps} updates, writing a checkpoint there as Ctrl-C does. */
    private static Trainer.Result trainStoppedAfter(int steps, Path run, NemotronV3Config config, MtpConfig mtp,
                                                    TrainOptions options, Corpus corpus) throws Exception {
        Trainer trainer = new Trainer(run, QUIET);
        trainer.addListener(new BaseTrainingListener() {
            @Override
            public void iterationDone(Model model, int iteration, int epoch) {
                if (iteration == steps - 1) {
                    trainer.requestStop();
                }
            }
        });
        return trainer.train(config, mtp, options, data(corpus, options));
    }

    private static CorpusTrainingData data(Corpus corpus, TrainOptions options) {
        return new CorpusTrainingData(corpus, new ByteTokenizer(), 0.1, options);
    }

    private static List<Double> losses(Path run) throws Exception {
        List<Double> out = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
            JsonNode row = json.readTree(line);
            out.add(row.get("loss").asDouble());
        }
        return out;
    }

    private static double mostFrequentTokenShare(Corpus corpus) {
        long[] counts = new long[256];
        long total = 0;
        for (Corpus.Document d : corpus.documents()) {
            for (int id : new ByteTokenizer().encode(d.text())) {
                counts[id]++;
                total++;
            }
        }
        long max = 0;
        for (long c : counts) {
            max = Math.max(max, c);
        }
        return max / (double) total;
    }
}
