package org.dl4jmtp.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.io.SafetensorsWriter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import picocli.CommandLine;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The command line, run in-process through picocli, against the reference fixture {@code tiny-hybrid}
 * (system property {@code dl4jmtp.fixtures}, else {@code ../../shared/fixtures}).
 */
class Dl4jMtpCliTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final double LOSS_TOL = 1e-10;
    private static final double TENSOR_TOL = 1e-6;

    /** stdout, stderr and exit code of one in-process run. */
    record Run(int exitCode, String out, String err) {
        JsonNode json() throws IOException {
            return JSON.readTree(out);
        }

        String describe() {
            return "exit " + exitCode + "\nstdout:\n" + out + "\nstderr:\n" + err;
        }
    }

    static Run run(String... args) {
        CommandLine cl = Dl4jMtpCli.newCommandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    static Path fixture() {
        String property = System.getProperty("dl4jmtp.fixtures");
        Path dir = (property != null ? Paths.get(property) : Paths.get("../../shared/fixtures")).resolve("tiny-hybrid");
        assertTrue(Files.isDirectory(dir), "fixture directory not found: " + dir.toAbsolutePath());
        return dir;
    }

    static JsonNode expected() throws IOException {
        return JSON.readTree(fixture().resolve("expected.json").toFile());
    }

    static String ioFile() {
        return fixture().resolve("io.safetensors").toString();
    }

    // ---- eval with --dump --grads: run once, checked by two tests ----

    private static Path dumpDir;
    private static Run evalWithDump;

    private static synchronized Run evalWithDump() throws IOException {
        if (evalWithDump == null) {
            dumpDir = Files.createTempDirectory("dl4jmtp-cli-test");
            evalWithDump = run("eval", "--checkpoint", fixture().toString(), "--batch", ioFile(),
                    "--mtp-depths", "2", "--dtype", "double", "--dump", dumpDir.resolve("dump.safetensors").toString(),
                    "--grads");
        }
        return evalWithDump;
    }

    @AfterAll
    static void deleteDump() throws IOException {
        if (dumpDir != null) {
            try (Stream<Path> files = Files.walk(dumpDir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    @Test
    void evalPrintsTheFixtureLossesInDouble() throws IOException {
        Run r = evalWithDump();
        assertEquals(0, r.exitCode(), r.describe());
        JsonNode got = r.json();
        JsonNode want = expected();
        assertEquals(want.get("loss_main").asDouble(), got.get("loss_main").asDouble(), LOSS_TOL);
        assertEquals(2, got.get("mtp_per_depth_losses").size());
        for (int d = 0; d < 2; d++) {
            assertEquals(want.get("mtp_per_depth_losses").get(d).asDouble(),
                    got.get("mtp_per_depth_losses").get(d).asDouble(), LOSS_TOL, "depth " + (d + 1));
            assertEquals(want.get("mtp_label_counts_per_depth").get(d).asLong(),
                    got.get("mtp_label_counts_per_depth").get(d).asLong(), "count of depth " + (d + 1));
        }
        assertEquals(want.get("mtp_loss").asDouble(), got.get("mtp_loss").asDouble(), LOSS_TOL);
        assertEquals(want.get("total_loss").asDouble(), got.get("total_loss").asDouble(), LOSS_TOL);
        assertEquals(want.get("N").asLong(), got.get("N").asLong());
    }

    @Test
    void evalDumpHoldsOutputsAndEveryGradientOfTheFixture() throws IOException {
        Run r = evalWithDump();
        assertEquals(0, r.exitCode(), r.describe());
        try (SafetensorsCheckpoint dump = SafetensorsCheckpoint.open(dumpDir.resolve("dump.safetensors"));
             SafetensorsCheckpoint io = SafetensorsCheckpoint.open(Paths.get(ioFile()))) {
            for (String key : new String[]{"logits_main", "hidden_final", "logits_mtp_1", "logits_mtp_2",
                    "mtp_hidden_1", "mtp_hidden_2"}) {
                assertEquals(DataType.FLOAT, dump.get(key).dataType(), key);
                assertRelativeError(dump.get(key), io.get(key), key);
            }
            TreeSet<String> expectedGrads = new TreeSet<>();
            io.keys().stream().filter(k -> k.startsWith("grad.")).forEach(expectedGrads::add);
            TreeSet<String> dumpedGrads = new TreeSet<>();
            dump.keys().stream().filter(k -> k.startsWith("grad.")).forEach(dumpedGrads::add);
            assertEquals(92, expectedGrads.size());
            assertEquals(expectedGrads, dumpedGrads, "one grad.<hf key> per trainable parameter");
            for (String key : expectedGrads) {
                assertRelativeError(dump.get(key), io.get(key), key);
            }
        }
    }

    private static void assertRelativeError(INDArray actual, INDArray expected, String what) {
        assertEquals(java.util.Arrays.toString(expected.shape()), java.util.Arrays.toString(actual.shape()),
                what + " shape");
        INDArray e = expected.castTo(DataType.DOUBLE);
        double scale = Math.max(e.amaxNumber().doubleValue(), 1e-30);
        double err = actual.castTo(DataType.DOUBLE).sub(e).amaxNumber().doubleValue() / scale;
        assertTrue(err <= TENSOR_TOL, what + ": max abs error relative to the tensor's max = " + err);
    }

    @Test
    void evalWithDepthNormalisationGivesTheMegatronStyleLosses() throws IOException {
        Run r = run("eval", "--checkpoint", fixture().toString(), "--batch", ioFile(), "--mtp-depths", "2",
                "--dtype", "double", "--mtp-norm", "depth");
        assertEquals(0, r.exitCode(), r.describe());
        JsonNode got = r.json();
        JsonNode want = expected();
        JsonNode megatron = want.get("megatron_style");
        assertEquals(want.get("loss_main").asDouble(), got.get("loss_main").asDouble(), LOSS_TOL);
        for (int d = 0; d < 2; d++) {
            assertEquals(megatron.get("per_depth_losses").get(d).asDouble(),
                    got.get("mtp_per_depth_losses").get(d).asDouble(), LOSS_TOL, "depth " + (d + 1));
        }
        assertEquals(megatron.get("mtp_loss").asDouble(), got.get("mtp_loss").asDouble(), LOSS_TOL);
        assertEquals(megatron.get("total_loss").asDouble(), got.get("total_loss").asDouble(), LOSS_TOL);
        assertEquals("depth", got.get("mtp").get("normalization").asText());
    }

    @Test
    void evalWithOneDepthUsesTheFirstPhysicalDepthOfTheCheckpoint() throws IOException {
        Run r = run("eval", "--checkpoint", fixture().toString(), "--batch", ioFile(), "--mtp-depths", "1",
                "--dtype", "double", "--mtp-lambda", "0.3");
        assertEquals(0, r.exitCode(), r.describe());
        JsonNode got = r.json();
        JsonNode want = expected();
        double lossMain = want.get("loss_main").asDouble();
        double depth1 = want.get("mtp_per_depth_losses").get(0).asDouble();
        assertEquals(lossMain, got.get("loss_main").asDouble(), LOSS_TOL);
        assertEquals(1, got.get("mtp_per_depth_losses").size());
        assertEquals(depth1, got.get("mtp_per_depth_losses").get(0).asDouble(), LOSS_TOL);
        assertEquals(0.3 * depth1, got.get("mtp_loss").asDouble(), LOSS_TOL);
        assertEquals(lossMain + 0.3 * depth1, got.get("total_loss").asDouble(), LOSS_TOL);
        assertEquals(want.get("mtp_label_counts_per_depth").get(0).asLong(),
                got.get("mtp_label_counts_per_depth").get(0).asLong());
        assertTrue(r.err().contains("using 1 of the checkpoint's 2 physical MTP depths"), r.err());
    }

    @Test
    void evalOnTheSameDiffRuntimeGivesTheFixtureLosses() throws IOException {
        Run r = run("eval", "--checkpoint", fixture().toString(), "--batch", ioFile(), "--mtp-depths", "2",
                "--dtype", "double", "--runtime", "samediff");
        assertEquals(0, r.exitCode(), r.describe());
        JsonNode got = r.json();
        JsonNode want = expected();
        assertEquals("samediff", got.get("runtime").asText());
        assertEquals(want.get("loss_main").asDouble(), got.get("loss_main").asDouble(), LOSS_TOL);
        for (int d = 0; d < 2; d++) {
            assertEquals(want.get("mtp_per_depth_losses").get(d).asDouble(),
                    got.get("mtp_per_depth_losses").get(d).asDouble(), LOSS_TOL, "depth " + (d + 1));
        }
        assertEquals(want.get("total_loss").asDouble(), got.get("total_loss").asDouble(), LOSS_TOL);
    }

    @Test
    void unknownRuntimeIsAUsageError() {
        Run r = run("eval", "--checkpoint", fixture().toString(), "--batch", ioFile(), "--runtime", "fast");
        assertEquals(2, r.exitCode(), r.describe());
        assertTrue(r.err().contains("--runtime") && r.err().contains("explicit or samediff"), r.describe());
    }

    @ParameterizedTest
    @ValueSource(strings = {"explicit", "samediff"})
    void generateMatchesTheFixtureGreedyTokensAndDrafts(String runtime) throws IOException {
        Run r = run("generate", "--checkpoint", fixture().toString(), "--prompt-ids", "80,33,58,64,52,81",
                "--max-new-tokens", "10", "--show-drafts", "--dtype", "double", "--runtime", runtime);
        assertEquals(0, r.exitCode(), r.describe());
        JsonNode got = r.json();
        JsonNode greedy = expected().get("greedy");
        assertEquals(greedy.get("prompt"), got.get("prompt"));
        assertEquals(greedy.get("generated"), got.get("generated"));
        assertEquals(greedy.get("drafts"), got.get("drafts"));
    }

    @Test
    void infoPrintsThePatternAndLoadsStrictly() {
        Run r = run("info", "--checkpoint", fixture().toString());
        assertEquals(0, r.exitCode(), r.describe());
        assertTrue(r.out().contains("M*ME-M"), r.out());
        assertTrue(r.out().matches("(?s).*loads strictly:\\s+yes.*"), r.out());
        assertTrue(r.out().matches("(?s).*mtp:\\s+2 physical depth.*pattern \\*E.*"), r.out());
    }

    @Test
    void infoConfigAloneMatchesTheCheckpointAndItsGraph() throws IOException {
        Run fromConfig = run("info", "--config", fixture().resolve("config.json").toString(), "--json");
        assertEquals(0, fromConfig.exitCode(), fromConfig.describe());
        Run fromCheckpoint = run("info", "--checkpoint", fixture().toString(), "--json");
        assertEquals(0, fromCheckpoint.exitCode(), fromCheckpoint.describe());
        JsonNode config = fromConfig.json();
        JsonNode checkpoint = fromCheckpoint.json();
        assertFalse(config.has("checkpoint_tensors"), "no weights are read");
        for (String key : List.of("pattern", "layer_types", "layers_by_type", "mtp_pattern", "mtp_physical_depths",
                "params_total", "params_mtp", "params_active_per_token", "train_flops_per_token", "memory_bytes")) {
            assertEquals(checkpoint.get(key), config.get(key), key);
        }
        // the graph holds the parameters and the routers' correction-bias buffers
        assertEquals(checkpoint.get("parameters").asLong() - checkpoint.get("frozen_buffer_parameters").asLong(),
                config.get("params_total").asLong());
        long mtpMoeLayers = config.get("mtp_physical_depths").asLong()
                * config.get("mtp_pattern").asText().chars().filter(ch -> ch == 'E').count();
        assertEquals(checkpoint.get("mtp_parameters").asLong() - mtpMoeLayers * config.get("n_routed_experts").asLong(),
                config.get("params_mtp").asLong());
        long total = config.get("params_total").asLong();
        assertTrue(config.get("params_active_per_token").asLong() < total);
        assertEquals(16 * total, config.get("memory_bytes").get("training").get("float32").asLong());
        assertEquals(2 * total, config.get("memory_bytes").get("inference").get("bfloat16").asLong());
    }

    /** A group-limited config (4 experts in 2 groups, 1 kept, top-2) is described, not refused. */
    @Test
    void infoDescribesGroupLimitedRouting() throws IOException {
        Path dir = Files.createTempDirectory("dl4jmtp-cli-groups");
        try {
            String config = Files.readString(fixture().resolve("config.json"))
                    .replaceFirst("\"n_group\": 1", "\"n_group\": 2");
            assertTrue(config.contains("\"n_group\": 2") && config.contains("\"topk_group\": 1"), config);
            Path file = Files.writeString(dir.resolve("config.json"), config);
            Run json = run("info", "--config", file.toString(), "--json");
            assertEquals(0, json.exitCode(), json.describe());
            assertEquals(2, json.json().get("n_group").asInt());
            assertEquals(1, json.json().get("topk_group").asInt());
            Run text = run("info", "--config", file.toString());
            assertEquals(0, text.exitCode(), text.describe());
            assertTrue(text.out().contains("top-2 within the best 1 of 2 groups"), text.out());
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    @Test
    void infoNeedsExactlyOneOfCheckpointAndConfig() {
        assertEquals(2, run("info").exitCode());
        Run both = run("info", "--checkpoint", fixture().toString(), "--config",
                fixture().resolve("config.json").toString());
        assertEquals(2, both.exitCode(), both.describe());
        assertTrue(both.err().contains("mutually exclusive"), both.err());
        Run text = run("info", "--config", fixture().resolve("config.json").toString());
        assertEquals(0, text.exitCode(), text.describe());
        assertTrue(text.out().matches("(?s).*layers:.*\\n\\s+0\\s+M \\* M E - M\\n.*"), text.out());
        assertTrue(text.out().matches("(?s).*memory, training:.*float32.*bfloat16.*"), text.out());
    }

    // ---- errors: a message naming the problem, no stack trace ----

    private static void assertCleanError(Run r, int exitCode, String... mentions) {
        assertEquals(exitCode, r.exitCode(), r.describe());
        for (String m : mentions) {
            assertTrue(r.err().contains(m), "stderr should mention '" + m + "':\n" + r.err());
        }
        assertFalse(r.err().contains("\tat "), "no stack trace:\n" + r.err());
        assertFalse(r.err().contains("Exception"), "no exception names:\n" + r.err());
    }

    @Test
    void missingCheckpointDirectoryIsAClearError() {
        String missing = fixture().resolveSibling("no-such-checkpoint").toString();
        Run r = run("eval", "--checkpoint", missing, "--batch", ioFile());
        assertCleanError(r, 1, "checkpoint directory not found", "no-such-checkpoint");
        assertCleanError(run("info", "--checkpoint", missing), 1, "no-such-checkpoint");
        assertCleanError(run("generate", "--checkpoint", missing, "--prompt-ids", "1", "--max-new-tokens", "1"),
                1, "no-such-checkpoint");
    }

    @Test
    void outOfRangePromptIdIsAClearError() {
        Run r = run("generate", "--checkpoint", fixture().toString(), "--prompt-ids", "80,97,58",
                "--max-new-tokens", "2");
        assertCleanError(r, 1, "--prompt-ids", "97", "out of range", "[0, 97)");
        assertCleanError(run("generate", "--checkpoint", fixture().toString(), "--prompt-ids", "-3",
                "--max-new-tokens", "2"), 1, "-3", "out of range");
    }

    @Test
    void badBatchFilesAreClearErrors() throws IOException {
        Path dir = Files.createTempDirectory("dl4jmtp-cli-batch");
        try {
            Path outOfRange = dir.resolve("out-of-range.safetensors");
            INDArray ids = Nd4j.createFromArray(new long[][]{{1, 2, 3}, {4, 500, 6}});
            INDArray labels = Nd4j.createFromArray(new long[][]{{2, 3, -100}, {5, 6, -100}});
            SafetensorsWriter.write(outOfRange, Map.of("input_ids", ids, "labels", labels), null);
            assertCleanError(run("eval", "--checkpoint", fixture().toString(), "--batch", outOfRange.toString()),
                    1, "input_ids[1, 1] = 500", "out of range");

            Path mismatch = dir.resolve("mismatch.safetensors");
            SafetensorsWriter.write(mismatch, Map.of("input_ids", ids,
                    "labels", Nd4j.createFromArray(new long[][]{{2, 3}, {5, 6}})), null);
            assertCleanError(run("eval", "--checkpoint", fixture().toString(), "--batch", mismatch.toString()),
                    1, "same shape");

            Path noLabels = dir.resolve("no-labels.safetensors");
            SafetensorsWriter.write(noLabels, Map.of("input_ids", ids), null);
            assertCleanError(run("eval", "--checkpoint", fixture().toString(), "--batch", noLabels.toString()),
                    1, "labels");

            Path notSafetensors = dir.resolve("garbage.safetensors");
            Files.writeString(notSafetensors, "not a safetensors file");
            assertCleanError(run("eval", "--checkpoint", fixture().toString(), "--batch",
                    notSafetensors.toString()), 1, "garbage.safetensors");

            assertCleanError(run("eval", "--checkpoint", fixture().toString(), "--batch",
                    dir.resolve("missing.safetensors").toString()), 1, "missing.safetensors");
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    @Test
    void usageErrorsExitWithCode2() {
        Run missingOption = run("eval", "--batch", ioFile());
        assertEquals(2, missingOption.exitCode(), missingOption.describe());
        assertTrue(missingOption.err().contains("--checkpoint"), missingOption.err());

        Run badNorm = run("eval", "--checkpoint", fixture().toString(), "--batch", ioFile(), "--mtp-norm", "foo");
        assertEquals(2, badNorm.exitCode(), badNorm.describe());
        assertTrue(badNorm.err().contains("foo"), badNorm.err());

        Run badDtype = run("generate", "--checkpoint", fixture().toString(), "--prompt-ids", "1",
                "--max-new-tokens", "1", "--dtype", "half");
        assertEquals(2, badDtype.exitCode(), badDtype.describe());

        Run gradsWithoutDump = run("eval", "--checkpoint", fixture().toString(), "--batch", ioFile(), "--grads");
        assertEquals(2, gradsWithoutDump.exitCode(), gradsWithoutDump.describe());

        Run tooManyDepths = run("eval", "--checkpoint", fixture().toString(), "--batch", ioFile(),
                "--mtp-depths", "3");
        assertCleanError(tooManyDepths, 1, "missing keys", "mtp.layers.4.", "--mtp-depths <= 2");

        Run noSubcommand = run();
        assertEquals(2, noSubcommand.exitCode(), noSubcommand.describe());
        assertNotEquals("", noSubcommand.err());

        assertEquals(0, run("--help").exitCode());
    }
}
