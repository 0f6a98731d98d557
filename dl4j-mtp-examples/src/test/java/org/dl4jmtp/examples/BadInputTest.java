package org.dl4jmtp.examples;

import org.deeplearning4j.ui.model.storage.FileStatsStorage;
import org.dl4jmtp.examples.Dl4jMtpCliTest.Run;
import org.dl4jmtp.io.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.dl4jmtp.examples.Dl4jMtpCliTest.fixture;
import static org.dl4jmtp.examples.Dl4jMtpCliTest.run;
import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every entry point rejects what it does not understand: a non-zero exit and exactly one line on stderr naming the
 * input and the problem, without a stack trace unless {@code --verbose} is given.
 */
class BadInputTest {

    private static final INDArray IDS = Nd4j.createFromArray(new long[][]{{1, 2, 3}, {4, 5, 6}});
    private static final INDArray LABELS = Nd4j.createFromArray(new long[][]{{2, 3, -100}, {5, 6, -100}});

    @TempDir
    Path dir;

    /** A non-zero exit, one line on stderr mentioning every {@code mentions}, and no stack trace. */
    private static void assertOneLineError(Run r, String... mentions) {
        assertNotEquals(0, r.exitCode(), r.describe());
        List<String> lines = r.err().lines().toList();
        assertEquals(1, lines.size(), "exactly one line on stderr:\n" + r.err());
        for (String m : mentions) {
            assertTrue(lines.get(0).contains(m), "stderr should mention '" + m + "':\n" + r.err());
        }
        assertFalse(r.err().contains("Exception"), "no exception names:\n" + r.err());
        assertFalse(r.err().contains("at org."), "no stack frames:\n" + r.err());
    }

    private static String fixtureDir() {
        return fixture().toString();
    }

    private Path batch(String name, Map<String, INDArray> tensors) throws IOException {
        Path file = dir.resolve(name);
        SafetensorsWriter.write(file, tensors, null);
        return file;
    }

    private static Map<String, INDArray> batchWith(String key, INDArray value) {
        Map<String, INDArray> tensors = new LinkedHashMap<>(Map.of("input_ids", IDS, "labels", LABELS));
        tensors.put(key, value);
        return tensors;
    }

    private Run eval(Path batch) {
        return run("eval", "--checkpoint", fixtureDir(), "--batch", batch.toString());
    }

    // ---- eval --batch ----

    @Test
    void evalRejectsATensorItDoesNotKnow() throws IOException {
        Path file = batch("mask.safetensors", batchWith("attention_mask", Nd4j.ones(2, 3)));
        assertOneLineError(eval(file), file.toString(), "unknown tensor 'attention_mask'");
    }

    @Test
    void evalRejectsAWrongDtypeOrShapeOfAKnownTensor() throws IOException {
        Path floatIds = batch("float-ids.safetensors", Map.of("input_ids", IDS.castTo(DataType.FLOAT),
                "labels", LABELS));
        assertOneLineError(eval(floatIds), floatIds.toString(), "'input_ids'", "expected I64", "got F32");

        Path rank3 = batch("rank3.safetensors", Map.of("input_ids", IDS, "labels", LABELS.reshape(2, 3, 1)));
        assertOneLineError(eval(rank3), "'labels'", "[B, T]", "got shape [2, 3, 1]");

        Path docShape = batch("doc-shape.safetensors", batchWith("document_ids",
                Nd4j.createFromArray(new long[][]{{0, 0}, {1, 1}})));
        assertOneLineError(eval(docShape), docShape.toString(), "document_ids", "[2, 3]", "got [2, 2]");

        Path docFloat = batch("doc-float.safetensors", batchWith("document_ids", Nd4j.zeros(2, 3)));
        assertOneLineError(eval(docFloat), "'document_ids'", "expected I64", "got F32");

        Path docNegative = batch("doc-negative.safetensors", batchWith("document_ids",
                Nd4j.createFromArray(new long[][]{{0, 0, 1}, {0, -1, 1}})));
        assertOneLineError(eval(docNegative), "document_ids[1, 1] = -1", "out of range");
    }

    @Test
    void evalIsolatesTheDocumentsOfDocumentIds() throws IOException {
        Run split = eval(batch("docs.safetensors", batchWith("document_ids",
                Nd4j.createFromArray(new long[][]{{0, 1, 1}, {2, 2, 2}}))));
        Run whole = eval(batch("whole.safetensors", batchWith("document_ids",
                Nd4j.createFromArray(new long[][]{{4, 4, 4}, {2, 2, 2}}))));
        Run none = eval(batch("none.safetensors", new LinkedHashMap<>(Map.of("input_ids", IDS, "labels", LABELS))));
        for (Run r : List.of(split, whole, none)) {
            assertEquals(0, r.exitCode(), r.describe());
        }
        // one document per row is what eval computes without document ids; a boundary in row 0 changes the loss of
        // position 1, which then sees only itself
        assertEquals(lossMain(none), lossMain(whole), 1e-12);
        assertTrue(Math.abs(lossMain(split) - lossMain(none)) > 1e-6, split.out() + " vs " + none.out());
    }

    private static double lossMain(Run r) throws IOException {
        return new com.fasterxml.jackson.databind.ObjectMapper().readTree(r.out()).get("loss_main").asDouble();
    }

    // ---- generate ----

    @Test
    void generateRejectsOutOfVocabularyPromptIds() {
        assertOneLineError(run("generate", "--checkpoint", fixtureDir(), "--prompt-ids", "5,97",
                "--max-new-tokens", "1"), "--prompt-ids", "token id 97 (position 1)", "out of range", "[0, 97)");
    }

    @Test
    void generateRejectsAPromptIdThatIsNotANumber() {
        assertOneLineError(run("generate", "--checkpoint", fixtureDir(), "--prompt-ids", "5,x7",
                "--max-new-tokens", "1"), "--prompt-ids", "'x7' (position 1)", "not a token id");
    }

    @Test
    void generateRejectsAnEmptyPrompt() {
        assertOneLineError(run("generate", "--checkpoint", fixtureDir(), "--prompt", "", "--max-new-tokens", "1"),
                "--prompt is empty");
        assertOneLineError(run("generate", "--checkpoint", fixtureDir(), "--prompt-ids", "", "--max-new-tokens", "1"),
                "--prompt-ids is empty");
    }

    @Test
    void generateNeedsAtLeastOneNewToken() {
        for (String n : new String[]{"0", "-2"}) {
            assertOneLineError(run("generate", "--checkpoint", fixtureDir(), "--prompt-ids", "5", "--max-new-tokens",
                    n), "--max-new-tokens must be >= 1, got " + n);
        }
    }

    // ---- train --corpus, --tokenizer, --config ----

    private Run train(String... args) {
        List<String> all = new ArrayList<>(List.of("train", "--out", dir.resolve("run").toString()));
        all.addAll(List.of(args));
        return run(all.toArray(String[]::new));
    }

    @Test
    void trainRejectsAFolderWithoutText() throws IOException {
        Path folder = Files.createDirectories(dir.resolve("no-text"));
        Files.writeString(folder.resolve("notes.md"), "not a .txt file");
        assertOneLineError(train("--corpus", folder.toString()), folder.toString(), "no non-empty .txt");
    }

    @Test
    void trainRejectsAnEmptyFile() throws IOException {
        Path empty = Files.write(dir.resolve("empty.txt"), new byte[0]);
        assertOneLineError(train("--corpus", empty.toString()), empty.toString(), "empty");
    }

    @Test
    void trainRejectsABinaryFileNamingTheOffset() throws IOException {
        Path folder = Files.createDirectories(dir.resolve("corpus"));
        Files.writeString(folder.resolve("a.txt"), "some text");
        Path binary = Files.write(folder.resolve("b.txt"), new byte[]{'G', 'I', 'F', '8', 0, 1});
        assertOneLineError(train("--corpus", folder.toString()), binary.toString(), "binary",
                "NUL byte at offset 4");
    }

    @Test
    void trainRejectsInvalidUtf8NamingTheOffset() throws IOException {
        Path latin1 = Files.write(dir.resolve("latin1.txt"), "na\u00efve".getBytes(StandardCharsets.ISO_8859_1));
        assertOneLineError(train("--corpus", latin1.toString()), latin1.toString(), "not valid UTF-8",
                "offset 2 (0xEF)");
    }

    /** A resumed run trains on its recorded data: another --corpus is refused, naming both. */
    @Test
    void resumeRejectsAnotherCorpusThanTheRunsOwn() throws IOException {
        Path own = Files.writeString(dir.resolve("own.txt"), "the run's corpus");
        Path other = Files.writeString(dir.resolve("other.txt"), "another corpus");
        Path runDir = Files.createDirectories(dir.resolve("run"));
        Files.writeString(runDir.resolve("run.json"), "{\"config\": " + org.dl4jmtp.examples.train.Presets.byName("tiny").toJson()
                + ", \"mtp\": {\"numLayers\": 2, \"layerPattern\": \"*E\", \"lossScalingFactor\": 0.1,"
                + " \"useRepeatedLayer\": false, \"lossNormalization\": \"MAIN_LABEL_COUNT\"},"
                + " \"training\": {\"steps\": 4, \"batchSize\": 2, \"seqLen\": 8, \"learningRate\": 0.01,"
                + " \"warmupSteps\": 1, \"minLrRatio\": 0.1, \"gradientClip\": 1.0, \"seed\": 1, \"evalEvery\": 2,"
                + " \"evalBatches\": 1, \"checkpointEvery\": 2, \"keepCheckpoints\": 1, \"dataType\": \"FLOAT\"},"
                + " \"data\": {\"corpus\": \"" + own.toAbsolutePath() + "\", \"tokenizer\": null,"
                + " \"validationFraction\": 0.05}}");
        assertOneLineError(run("train", "--resume", runDir.toString(), "--corpus", other.toString()),
                "--corpus " + other.toAbsolutePath(), own.toAbsolutePath().toString(), "leave --corpus out");
    }

    @Test
    void aTokenizerJsonThatDoesNotParseIsOneLine() throws IOException {
        Path corpus = Files.writeString(dir.resolve("text.txt"), "some text");
        Path broken = Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"vocab\": {\"a\": 0,}}}");
        assertOneLineError(train("--corpus", corpus.toString(), "--tokenizer", broken.toString()),
                broken.toString(), "not valid JSON", "line 1, column");
        assertOneLineError(run("generate", "--checkpoint", fixtureDir(), "--prompt", "hi", "--tokenizer",
                broken.toString(), "--max-new-tokens", "1"), broken.toString(), "not valid JSON");

        Path noVocabulary = Files.writeString(dir.resolve("other.json"), "{\"name\": \"not a tokenizer\"}");
        assertOneLineError(train("--corpus", corpus.toString(), "--tokenizer", noVocabulary.toString()),
                noVocabulary.toString(), "no vocabulary");

        Path notLoadable = Files.writeString(dir.resolve("odd.json"), "{\"model\": {\"vocab\": {\"a\": 0}}}");
        assertOneLineError(train("--corpus", corpus.toString(), "--tokenizer", notLoadable.toString()),
                notLoadable.toString(), "not a tokenizer DJL can load");
    }

    /** A pretrained model trains only with a tokenizer of its vocabulary size: the fixture's 97 against bytes' 256. */
    @Test
    void trainInitFromRejectsATokenizerOfAnotherVocabularySize() throws IOException {
        Path corpus = Files.writeString(dir.resolve("text.txt"), "some text");
        assertOneLineError(train("--corpus", corpus.toString(), "--init-from", fixtureDir()), "--init-from",
                "vocab_size 97", "tokenizer's 256");
        assertOneLineError(train("--corpus", corpus.toString(), "--init-from", fixtureDir(), "--preset", "small"),
                "--init-from takes the model's config", "leave out --preset");
        assertOneLineError(train("--corpus", corpus.toString(), "--train-only", "backbone"),
                "train-only must be all or mtp, got backbone");
        assertOneLineError(train("--corpus", corpus.toString(), "--router-bias-update-rate", "-1"),
                "router bias update rate must be finite and >= 0, got -1.0");
    }

    // ---- config.json out of range ----

    /** A checkpoint directory whose config.json is the fixture's with {@code from} replaced by {@code to}. */
    private Path checkpointWith(String from, String to) throws IOException {
        String config = Files.readString(fixture().resolve("config.json"));
        assertTrue(config.contains(from), "fixture config.json holds " + from);
        Path checkpoint = Files.createTempDirectory(dir, "checkpoint");
        Files.writeString(checkpoint.resolve("config.json"), config.replace(from, to));
        return checkpoint;
    }

    @Test
    void outOfRangeConfigValuesAreOneLineNamingTheFileAndField() throws IOException {
        Path eps = checkpointWith("\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": -1");
        assertOneLineError(run("info", "--checkpoint", eps.toString()), eps.resolve("config.json").toString(),
                "layer_norm_epsilon must be finite and > 0, got -1.0");

        Path kv = checkpointWith("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
        assertOneLineError(run("eval", "--checkpoint", kv.toString(), "--batch", Dl4jMtpCliTest.ioFile()),
                kv.resolve("config.json").toString(), "num_attention_heads (4)", "num_key_value_heads (3)");

        Path topK = checkpointWith("\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 5");
        assertOneLineError(run("generate", "--checkpoint", topK.toString(), "--prompt-ids", "5",
                "--max-new-tokens", "1"), "num_experts_per_tok (5) must be <= n_routed_experts (4)");

        Path vocab = checkpointWith("\"vocab_size\": 97", "\"vocab_size\": 0");
        assertOneLineError(run("info", "--checkpoint", vocab.toString()), "vocab_size must be > 0, got 0");
    }

    @Test
    void aConfigJsonThatDoesNotParseIsOneLineWithItsPosition() throws IOException {
        Path checkpoint = checkpointWith("\"vocab_size\": 97,", "\"vocab_size\": 97,,");
        assertOneLineError(run("info", "--checkpoint", checkpoint.toString()),
                checkpoint.resolve("config.json").toString(), "not valid JSON", "(line 7, column");
    }

    @Test
    void trainConfigErrorsNameTheFile() throws IOException {
        Path corpus = Files.writeString(dir.resolve("text.txt"), "some text");
        Path config = checkpointWith("\"hidden_size\": 32", "\"hidden_size\": -32").resolve("config.json");
        assertOneLineError(train("--corpus", corpus.toString(), "--config", config.toString()), config.toString(),
                "hidden_size must be > 0, got -32");

        Path missing = dir.resolve("missing.json");
        assertOneLineError(train("--corpus", corpus.toString(), "--config", missing.toString()), missing.toString(),
                "not found");
    }

    // ---- ui --stats ----

    private static Run ui(Path stats) {
        // a file MapDB opened by mistake would be served until Ctrl-C: the timeout turns that into a failure
        return assertTimeoutPreemptively(Duration.ofSeconds(60), () -> run("ui", "--stats", stats.toString()));
    }

    @Test
    void uiRejectsEmptyForeignAndTruncatedStatsFiles() throws IOException {
        Path empty = Files.write(dir.resolve("empty.dl4j"), new byte[0]);
        Path text = Files.writeString(dir.resolve("text.dl4j"), "step,loss\n1,5.4\n");
        byte[] noise = new byte[4096];
        new Random(7).nextBytes(noise);
        noise[0] = 0x13; // not MapDB's header byte by chance
        Path random = Files.write(dir.resolve("random.dl4j"), noise);

        Path real = dir.resolve("real.dl4j");
        new FileStatsStorage(real.toFile()).close();
        byte[] stored = Files.readAllBytes(real);
        Path truncated = Files.write(dir.resolve("truncated.dl4j"), Arrays.copyOf(stored, stored.length / 2));

        assertAll(
                () -> assertOneLineError(ui(empty), empty.toString(), "empty"),
                () -> assertOneLineError(ui(text), text.toString(), "not a DL4J stats file"),
                () -> assertOneLineError(ui(random), random.toString(), "not a DL4J stats file"),
                () -> assertOneLineError(ui(truncated), truncated.toString(), "truncated or corrupted"));
    }

    // ---- --verbose ----

    @Test
    void verbosePrintsTheStackTraceOfAUserErrorBeforeOrAfterTheSubcommand() {
        String missing = dir.resolve("no-such-checkpoint").toString();
        Run quiet = run("info", "--checkpoint", missing);
        assertOneLineError(quiet, "checkpoint directory not found");
        for (Run verbose : new Run[]{run("--verbose", "info", "--checkpoint", missing),
                run("info", "--verbose", "--checkpoint", missing)}) {
            assertEquals(1, verbose.exitCode(), verbose.describe());
            assertTrue(verbose.err().startsWith(quiet.err().strip()), verbose.describe());
            assertTrue(verbose.err().contains("UserException"), verbose.describe());
            assertTrue(verbose.err().contains("\tat org.dl4jmtp.examples.CheckpointSupport.checkpointDir"),
                    verbose.describe());
        }
    }
}
