package org.dl4jmtp.examples.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.dl4jmtp.examples.Dl4jMtpCli;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@code bench} reads its presets from the copy bundled in the jar, which must stay identical to the PyTorch peer's
 * {@code presets.json} ({@code <dl4jmtp.fixtures>/../bench/presets.json}).
 */
class BundledPresetsTest {

    private static Path peerPresets() {
        String property = System.getProperty("dl4jmtp.fixtures");
        if (property == null) {
            fail("system property dl4jmtp.fixtures is not set (Surefire sets it to ../shared/fixtures)");
        }
        Path file = Paths.get(property).toAbsolutePath().normalize().resolveSibling("bench").resolve("presets.json");
        if (!Files.isRegularFile(file)) {
            fail("the peer's presets file is missing: " + file
                    + " (the bundled copy src/main/resources" + BenchCommand.BUNDLED_PRESETS + " is checked against it)");
        }
        return file;
    }

    @Test
    void bundledCopyEqualsThePeersPresets() throws Exception {
        String peer = Files.readString(peerPresets(), StandardCharsets.UTF_8);
        assertEquals(peer, BenchCommand.bundledPresets(),
                "src/main/resources" + BenchCommand.BUNDLED_PRESETS + " differs from " + peerPresets()
                        + ": copy the peer's file over it");
    }

    @Test
    void bundledCopyHasBothBenchmarkPresets() throws Exception {
        JsonNode root = new ObjectMapper().readTree(BenchCommand.bundledPresets());
        for (String preset : new String[]{"small", "medium"}) {
            assertTrue(root.path(preset).has("config"), "no preset '" + preset + "' in the bundled presets");
        }
    }

    /** Without {@code --presets} the command looks presets up in the bundled copy (no file outside the jar). */
    @Test
    void benchWithoutPresetsOptionReadsTheBundledCopy() {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        var cl = Dl4jMtpCli.newCommandLine();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        // bench reports a bad --preset through picocli's default handler, which writes to System.err
        java.io.ByteArrayOutputStream systemErr = new java.io.ByteArrayOutputStream();
        java.io.PrintStream previous = System.err;
        int code;
        System.setErr(new java.io.PrintStream(systemErr, true, StandardCharsets.UTF_8));
        try {
            code = cl.execute("bench", "--preset", "no-such-preset", "--steps", "1", "--warmup", "0");
        } finally {
            System.setErr(previous);
        }
        String messages = err + systemErr.toString(StandardCharsets.UTF_8);
        assertNotEquals(0, code, "stdout:\n" + out + "\nstderr:\n" + messages);
        assertTrue(messages.contains("no preset 'no-such-preset' in the bundled presets"), messages);
    }

    /** One measured step of the small preset, presets from the bundled copy. */
    @Test
    void benchSmallRunsOnTheBundledPresets() throws Exception {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        var cl = Dl4jMtpCli.newCommandLine();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute("bench", "--preset", "small", "--steps", "1", "--warmup", "0", "--json");
        assertEquals(0, code, "stdout:\n" + out + "\nstderr:\n" + err);
        JsonNode result = new ObjectMapper().readTree(out.toString());
        assertEquals("small", result.get("preset").asText());
        assertEquals(8 * 256, result.get("tokens_per_step").asInt());
    }

    /** --seq-len and --batch-size replace the preset's shape; the result says which shape ran and its peak RSS. */
    @Test
    void benchTakesSequenceLengthAndBatchSizeOverrides() throws Exception {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        var cl = Dl4jMtpCli.newCommandLine();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute("bench", "--preset", "small", "--seq-len", "48", "--batch-size", "1", "--steps", "1",
                "--warmup", "0", "--json");
        assertEquals(0, code, "stdout:\n" + out + "\nstderr:\n" + err);
        JsonNode result = new ObjectMapper().readTree(out.toString());
        assertEquals(48, result.get("seq_len").asInt());
        assertEquals(1, result.get("batch_size").asInt());
        assertEquals(48, result.get("tokens_per_step").asInt());
        assertTrue(result.get("peak_rss_mib").asDouble() > 0, result.toString());
        assertEquals("explicit", result.get("runtime").asText());
    }
}
