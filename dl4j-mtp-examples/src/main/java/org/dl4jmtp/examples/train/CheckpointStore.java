package org.dl4jmtp.examples.train;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.dl4jmtp.io.AtomicFiles;
import org.dl4jmtp.model.GraphZips;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * DL4J checkpoints of a run ({@code checkpoints/step-000123.zip}: configuration, parameters and updater state, via
 * ModelSerializer, plus the run's settings as the entry {@value #RUN_ENTRY}), written with {@link AtomicFiles} so that a
 * {@code step-*.zip} on disk is always complete; keeps the last K.
 *
 * <p>On resume, {@link #latestReadable} checks every entry's CRC before a checkpoint is trusted; one that fails
 * (truncated or corrupted by something other than this class) is renamed {@code step-NNNNNN.zip.unreadable}, never
 * deleted, and the previous one is tried.
 */
public final class CheckpointStore {

    /** The run's {@code run.json}, stored in every checkpoint so that a damaged {@code run.json} can be restored. */
    static final String RUN_ENTRY = "dl4jmtp-run.json";

    private static final String PREFIX = "step-";
    private static final String SUFFIX = ".zip";
    private static final Pattern NAME = Pattern.compile(Pattern.quote(PREFIX) + "\\d+" + Pattern.quote(SUFFIX));
    private static final String UNREADABLE = ".unreadable";

    private final Path dir;
    private final int keep;

    public CheckpointStore(Path runDir, int keep) {
        this.dir = runDir.resolve("checkpoints");
        this.keep = Math.max(1, keep);
    }

    public Path directory() {
        return dir;
    }

    /**
     * Writes the checkpoint of {@code step} (with {@code runJson} inside) and then removes all but the newest
     * {@code keep}: the older ones are deleted only once the new one is complete on disk.
     *
     * @throws IOException naming the checkpoint file (e.g. the disk is full); the previous checkpoints stay intact
     */
    public Path save(ComputationGraph graph, long step, String runJson) throws IOException {
        Path target = dir.resolve(String.format("%s%06d%s", PREFIX, step, SUFFIX));
        AtomicFiles.write(target, temp -> {
            ModelSerializer.writeModel(graph, temp.toFile(), true);
            ModelSerializer.addObjectToFile(temp.toFile(), RUN_ENTRY, runJson);
        });
        List<Path> all = list();
        for (int i = 0; i < all.size() - keep; i++) {
            Files.deleteIfExists(all.get(i));
        }
        return target;
    }

    /** The newest checkpoint, if any (not checked: see {@link #latestReadable}). */
    public Optional<Path> latest() throws IOException {
        List<Path> all = list();
        return all.isEmpty() ? Optional.empty() : Optional.of(all.get(all.size() - 1));
    }

    /**
     * The newest checkpoint whose every zip entry reads back with a matching CRC. Newer ones that do not are renamed
     * {@code *.unreadable} (so that they are neither resumed from nor counted as the newest again), each with a line
     * on {@code log} naming the file and the problem.
     */
    public Optional<Path> latestReadable(PrintStream log) throws IOException {
        List<Path> all = list();
        for (int i = all.size() - 1; i >= 0; i--) {
            Path checkpoint = all.get(i);
            String problem = problemReading(checkpoint);
            if (problem == null) {
                return Optional.of(checkpoint);
            }
            Path aside = checkpoint.resolveSibling(checkpoint.getFileName() + UNREADABLE);
            Files.move(checkpoint, aside, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            log.println("warning: checkpoint " + checkpoint + " is unreadable (" + problem + "); renamed to "
                    + aside.getFileName() + (i > 0 ? ", falling back to " + all.get(i - 1).getFileName()
                    : ", and there is no earlier checkpoint"));
        }
        return Optional.empty();
    }

    /** The step a checkpoint file belongs to. */
    public static long stepOf(Path checkpoint) {
        String name = checkpoint.getFileName().toString();
        return Long.parseLong(name.substring(PREFIX.length(), name.length() - SUFFIX.length()));
    }

    /** The graph and updater state of a checkpoint (also one written by an earlier version), on its stored runtime. */
    public static ComputationGraph restore(Path checkpoint) throws IOException {
        return GraphZips.restore(checkpoint, true, null);
    }

    /** The run settings stored in a checkpoint, or empty for checkpoints written before they were stored. */
    public static Optional<String> runJson(Path checkpoint) {
        if (!ModelSerializer.listObjectsInFile(checkpoint.toFile()).contains(RUN_ENTRY)) {
            return Optional.empty();
        }
        return Optional.of(ModelSerializer.getObjectFromFile(checkpoint.toFile(), RUN_ENTRY));
    }

    /** Null if every entry of the zip reads back in full with its CRC-32, else what is wrong. */
    static String problemReading(Path checkpoint) {
        int entries = 0;
        try (ZipInputStream zip = new ZipInputStream(Files.newInputStream(checkpoint))) {
            byte[] buffer = new byte[1 << 16];
            for (ZipEntry e; (e = zip.getNextEntry()) != null; ) {
                entries++;
                InputStream in = zip;
                while (in.read(buffer) >= 0) {
                    // ZipInputStream checks the entry's size and CRC-32 when it reaches the entry's end
                }
            }
        } catch (IOException | RuntimeException e) {
            return e.getMessage() != null ? e.getMessage() : e.toString();
        }
        return entries == 0 ? "not a zip file, or empty" : null;
    }

    private List<Path> list() throws IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> NAME.matcher(p.getFileName().toString()).matches())
                    .sorted().collect(Collectors.toList());
        }
    }
}
