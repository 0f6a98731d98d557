package org.dl4jmtp.examples.launch;

import org.dl4jmtp.examples.Dl4jMtpCli;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The jar's entry point as a user runs it, in a separate process: it re-executes itself once in a tuned JVM, passes
 * stdout, stderr and the exit code through, and leaves no process behind when it is killed with SIGKILL.
 */
class TunedLauncherTest {

    private static ProcessBuilder cli(Path dir, String... args) {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx256m", "-cp", System.getProperty("java.class.path"), Dl4jMtpCli.class.getName()));
        command.addAll(List.of(args));
        ProcessBuilder builder = new ProcessBuilder(command).directory(dir.toFile());
        builder.environment().remove(TunedLauncher.CHILD_MARK);
        builder.environment().remove(TunedLauncher.OPT_OUT);
        return builder;
    }

    @Test
    void stdoutStderrAndTheExitCodePassThrough(@TempDir Path dir) throws Exception {
        Process version = cli(dir, "--version").redirectError(dir.resolve("err1").toFile()).start();
        assertTrue(version.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, version.exitValue());
        String out = new String(version.getInputStream().readAllBytes());
        assertEquals(List.of("dl4j-mtp 0.1.0-SNAPSHOT (Deeplearning4j 1.0.0-M2.1)"), out.lines().toList());

        Process usage = cli(dir, "eval", "--checkpoint").redirectOutput(dir.resolve("out2").toFile()).start();
        assertTrue(usage.waitFor(60, TimeUnit.SECONDS));
        assertEquals(2, usage.exitValue(), "picocli's usage-error code");
        assertTrue(new String(usage.getErrorStream().readAllBytes()).contains("Missing required parameter"));
        assertEquals("", Files.readString(dir.resolve("out2")));
    }

    @Test
    void theTunedChildDiesWithItsParent(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("corpus.txt"), "a small corpus of plain text. ".repeat(400));
        Process parent = cli(dir, "train", "--preset", "tiny", "--corpus", "corpus.txt", "--out", "run",
                "--steps", "100000").redirectErrorStream(true).redirectOutput(dir.resolve("log").toFile()).start();
        ProcessHandle child = null;
        for (int i = 0; i < 600 && child == null; i++) {
            Optional<ProcessHandle> found = parent.toHandle().children().findFirst();
            child = found.orElse(null);
            Thread.sleep(100);
        }
        assertTrue(child != null, "the launcher started a child JVM:\n" + Files.readString(dir.resolve("log")));
        assertTrue(child.info().command().orElse("").endsWith("java"), child.info().toString());
        Thread.sleep(2000);                                  // the child is loading ND4J or training
        assertTrue(child.isAlive());

        parent.destroyForcibly().waitFor();                  // kill -9 of what the user started
        try {
            child.onExit().get(30, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            child.destroyForcibly();
            throw new AssertionError("the child JVM outlived its parent by 30 s (an orphan)");
        }
        assertFalse(child.isAlive(), "no orphan is left running");
    }
}
