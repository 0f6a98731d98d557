package org.dl4jmtp.examples.ui;

import org.dl4jmtp.examples.Dl4jMtpCli;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code ui}'s errors are one clear line (exit code 1), never a stack trace. */
class UiCommandTest {

    @Test
    void aMissingOrForeignStatsFileIsAClearError(@TempDir Path dir) throws Exception {
        String missing = run("ui", "--stats", dir.resolve("run/stats.dl4j").toString());
        assertTrue(missing.contains("ui: error: No such stats file"), missing);
        assertFalse(missing.contains("\tat "), "no stack trace: " + missing);

        Path foreign = Files.writeString(dir.resolve("notes.txt"), "not a stats file");
        String notStats = run("ui", "--stats", foreign.toString());
        assertTrue(notStats.contains("ui: error: Cannot open " + foreign), notStats);
        assertFalse(notStats.contains("\tat "), "no stack trace: " + notStats);
    }

    private static String run(String... args) {
        CommandLine cl = Dl4jMtpCli.newCommandLine();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(new StringWriter(), true));
        cl.setErr(new PrintWriter(err, true));
        assertEquals(1, cl.execute(args), err.toString());
        return err.toString();
    }
}
