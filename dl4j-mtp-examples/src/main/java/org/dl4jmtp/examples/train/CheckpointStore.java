package org.dl4jmtp.examples.train;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * DL4J checkpoints of a run ({@code checkpoints/step-000123.zip}: configuration, parameters and updater state, via
 * ModelSerializer), written through a temp file so that a checkpoint on disk is always complete; keeps the last K.
 */
public final class CheckpointStore {

    private static final String PREFIX = "step-";
    private static final String SUFFIX = ".zip";

    private final Path dir;
    private final int keep;

    public CheckpointStore(Path runDir, int keep) {
        this.dir = runDir.resolve("checkpoints");
        this.keep = Math.max(1, keep);
    }

    public Path directory() {
        return dir;
    }

    /** Writes the checkpoint of {@code step} and removes all but the newest {@code keep}. */
    public Path save(ComputationGraph graph, long step) throws IOException {
        Files.createDirectories(dir);
        Path target = dir.resolve(String.format("%s%06d%s", PREFIX, step, SUFFIX));
        Path temp = Files.createTempFile(dir, ".step-", ".tmp");
        try {
            ModelSerializer.writeModel(graph, temp.toFile(), true);
            Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(temp);
        }
        List<Path> all = list();
        for (int i = 0; i < all.size() - keep; i++) {
            Files.deleteIfExists(all.get(i));
        }
        return target;
    }

    /** The newest checkpoint, if any. */
    public Optional<Path> latest() throws IOException {
        List<Path> all = list();
        return all.isEmpty() ? Optional.empty() : Optional.of(all.get(all.size() - 1));
    }

    /** The step a checkpoint file belongs to. */
    public static long stepOf(Path checkpoint) {
        String name = checkpoint.getFileName().toString();
        return Long.parseLong(name.substring(PREFIX.length(), name.length() - SUFFIX.length()));
    }

    public static ComputationGraph restore(Path checkpoint) throws IOException {
        return ModelSerializer.restoreComputationGraph(checkpoint.toFile(), true);
    }

    private List<Path> list() throws IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> {
                String n = p.getFileName().toString();
                return n.startsWith(PREFIX) && n.endsWith(SUFFIX);
            }).sorted().collect(Collectors.toList());
        }
    }
}
