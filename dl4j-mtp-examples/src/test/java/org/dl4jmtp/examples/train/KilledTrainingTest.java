package org.dl4jmtp.examples.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.dl4jmtp.examples.Dl4jMtpCli;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.examples.launch.TunedLauncher;
import org.dl4jmtp.io.AtomicFiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@code train} as a child process, killed with SIGKILL ({@code kill -9}) at several points of one run — inside the
 * first checkpoint write (no complete checkpoint yet), between checkpoints, inside a later checkpoint write and inside
 * the HF export — and resumed each time with {@code train --resume}. The finished run must log every step once with
 * exactly the losses of an uninterrupted run (double precision) and export byte-identical weights.
 *
 * <p>The children run with {@link AtomicFiles#WRITE_DELAY_PROPERTY}, which holds every atomic write open for a moment
 * after its bytes are written, so "inside a write" is a state the test can see (the temp file exists) and kill in.
 */
class KilledTrainingTest {

    private static final int STEPS = 8;
    private static final long WRITE_DELAY_MS = 600;
    private static final long TIMEOUT_MS = 180_000;
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void aRunKilledAtAnyPointResumesOntoTheUninterruptedTrajectory(@TempDir Path dir) throws Exception {
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        for (Corpus.Document d : Corpus.synthetic(5, 3, 3000).documents()) {
            Files.writeString(corpus.resolve(d.name().replaceAll("[^A-Za-z0-9_-]", "_") + ".txt"), d.text());
        }
        Path config = Files.writeString(dir.resolve("config.json"), TrainerTest.microConfig().toJson());

        Path straight = dir.resolve("straight");
        Child reference = Child.start(dir, "straight", false, newRun(config, corpus, straight));
        assertEquals(0, reference.finish(), reference::output);

        Path run = dir.resolve("run");
        Path checkpoints = run.resolve("checkpoints");

        // 1. inside the first checkpoint's write: no complete checkpoint exists
        Child first = Child.start(dir, "kill-1", true, newRun(config, corpus, run));
        first.killWhen(() -> hasTemp(checkpoints, "step-000003.zip"));
        assertFalse(Files.exists(checkpoints.resolve("step-000003.zip")));

        // 2. between checkpoints: steps 4 and 5 are logged but not checkpointed
        Child second = Child.start(dir, "kill-2", true, resume(corpus, run));
        second.killWhen(() -> Files.exists(checkpoints.resolve("step-000003.zip")) && loggedSteps(run) >= 5);
        assertTrue(second.output().contains("starting the run again from step 0"), second::output);

        // 3. inside the write of the second checkpoint
        Child third = Child.start(dir, "kill-3", true, resume(corpus, run));
        third.killWhen(() -> hasTemp(checkpoints, "step-000006.zip"));
        assertTrue(third.output().contains("from step-000003.zip (step 3)"), third::output);

        // 4. inside the HF export, after the last step
        Child fourth = Child.start(dir, "kill-4", true, resume(corpus, run));
        // (the export is written into a temp directory beside hf/ and moved in: kill while its shard is being written)
        fourth.killWhen(() -> hasTempBelow(run, "model.safetensors"));
        assertTrue(fourth.output().contains("from step-000003.zip (step 3)"), fourth::output);

        Child last = Child.start(dir, "finish", true, resume(corpus, run));
        assertEquals(0, last.finish(), last::output);
        assertTrue(last.output().contains("from step-000008.zip (step 8)"), last::output);

        List<JsonNode> expected = rows(straight);
        List<JsonNode> actual = rows(run);
        assertEquals(STEPS, expected.size());
        assertEquals(STEPS, actual.size(), "metrics.jsonl holds every step once");
        for (int i = 0; i < STEPS; i++) {
            assertEquals(i + 1, actual.get(i).get("step").asInt(), "row " + i);
            for (String key : List.of("loss", "loss_main", "mtp_losses", "val_loss_main", "val_mtp_losses")) {
                assertEquals(expected.get(i).get(key), actual.get(i).get(key), key + " of step " + (i + 1));
            }
        }
        assertArrayEquals(Files.readAllBytes(straight.resolve("hf/model.safetensors")),
                Files.readAllBytes(run.resolve("hf/model.safetensors")), "exported weights");
        try (Stream<Path> files = Stream.concat(Stream.concat(Files.list(checkpoints), Files.list(run.resolve("hf"))),
                Files.list(run))) {
            List<Path> temps = files.filter(AtomicFiles::isTempFile).toList();
            assertTrue(temps.isEmpty(), "no temp file is left: " + temps);
        }
    }

    private static List<String> newRun(Path config, Path corpus, Path out) {
        return List.of("train", "--config", config.toString(), "--corpus", corpus.toString(), "--out", out.toString(),
                "--steps", "" + STEPS, "--batch-size", "4", "--seq-len", "32", "--lr", "1e-2", "--warmup", "3",
                "--checkpoint-every", "3", "--eval-every", "4", "--eval-batches", "2", "--validation-fraction", "0.1",
                "--dtype", "double", "--seed", "7");
    }

    private static List<String> resume(Path corpus, Path run) {
        return List.of("train", "--resume", run.toString(), "--corpus", corpus.toString());
    }

    /** A temp file of {@code target} in {@code dir} or in a temp directory inside it. */
    private static boolean hasTempBelow(Path dir, String target) {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> AtomicFiles.isTempFile(p) && Files.isDirectory(p))
                    .anyMatch(p -> hasTemp(p, target));
        } catch (IOException | java.io.UncheckedIOException e) {
            return false;   // the directory moved or vanished between list and look: not yet
        }
    }

    private static boolean hasTemp(Path dir, String target) {
        if (!Files.isDirectory(dir)) {
            return false;
        }
        try (Stream<Path> files = Files.list(dir)) {
            return files.anyMatch(p -> AtomicFiles.isTempFile(p) && p.getFileName().toString().startsWith("." + target + "."));
        } catch (IOException e) {
            return false;   // the directory changed while listing: look again
        }
    }

    private static int loggedSteps(Path run) {
        try {
            Path metrics = run.resolve("metrics.jsonl");
            return Files.exists(metrics) ? (int) Files.readAllLines(metrics).stream().filter(l -> l.endsWith("}")).count() : 0;
        } catch (IOException e) {
            return 0;
        }
    }

    private static List<JsonNode> rows(Path run) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
            out.add(JSON.readTree(line));
        }
        return out;
    }

    /** A {@code dl4j-mtp} CLI in its own JVM, output to a file. */
    private record Child(Process process, Path log) {

        static Child start(Path dir, String name, boolean slowWrites, List<String> args) throws IOException {
            List<String> command = new ArrayList<>(List.of(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx1g",
                    "-cp", System.getProperty("java.class.path")));
            if (slowWrites) {
                command.add("-D" + AtomicFiles.WRITE_DELAY_PROPERTY + "=" + WRITE_DELAY_MS);
            }
            command.add(Dl4jMtpCli.class.getName());
            command.addAll(args);
            Path log = dir.resolve(name + ".log");
            ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
            builder.environment().put("OMP_NUM_THREADS", "1");
            // the trainer itself is what is killed (the launcher's child dies with its parent: TunedLauncherTest)
            builder.environment().put(TunedLauncher.OPT_OUT, "1");
            return new Child(builder.start(), log);
        }

        /** Waits for {@code condition}, then kills the process with SIGKILL; fails if it exits first. */
        void killWhen(BooleanSupplier condition) throws Exception {
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (!condition.getAsBoolean()) {
                if (!process.isAlive()) {
                    fail("the child exited (" + process.exitValue() + ") before the point to kill it at:\n" + output());
                }
                if (System.currentTimeMillis() > deadline) {
                    process.destroyForcibly();
                    fail("timed out waiting for the point to kill the child at:\n" + output());
                }
                Thread.sleep(2);
            }
            process.destroyForcibly().waitFor();   // SIGKILL on Linux: no shutdown hook runs
            assertEquals(137, process.exitValue(), "killed by SIGKILL");
        }

        int finish() throws Exception {
            if (!process.waitFor(TIMEOUT_MS, java.util.concurrent.TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                fail("timed out:\n" + output());
            }
            return process.exitValue();
        }

        String output() {
            try {
                return Files.readString(log);
            } catch (IOException e) {
                return "(no output: " + e + ")";
            }
        }
    }
}
