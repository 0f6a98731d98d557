package org.dl4jmtp.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Writes a Hugging Face checkpoint directory: one {@code model.safetensors} when every tensor fits in one shard,
 * otherwise {@code model-00001-of-0000N.safetensors} ... plus {@code model.safetensors.index.json}
 * (<code>{"metadata": {"total_size": bytes}, "weight_map": {key: file}}</code>), as {@code transformers}'
 * {@code save_pretrained} does: tensors in key order, a new shard when the next tensor would take the current one over
 * the limit (a tensor larger than the limit gets a shard of its own); sizes count tensor data only.
 *
 * <p>Atomic as a whole: everything is written (and forced to disk) into a temp directory beside the target
 * ({@code .<name>.<random>.tmp}), then moved in: the previous index is removed first, then the shards, then the new
 * index, so that no index ever points at a missing or half-replaced shard. Weight files of an earlier save that the
 * new layout does not use (its {@code model.safetensors}, its index, shards {@code model-NNNNN-of-NNNNN.safetensors}
 * of another count) are <em>removed</em> and reported in {@link Result#removed()}; no other file is touched.
 */
public final class HfCheckpointWriter {

    /** transformers' default {@code max_shard_size}: 5 GB (decimal). */
    public static final long DEFAULT_MAX_SHARD_BYTES = 5_000_000_000L;

    private static final Pattern SHARD_NAME = Pattern.compile("model-\\d{5}-of-\\d{5}\\.safetensors");
    private static final Pattern SIZE = Pattern.compile("\\s*(\\d+(?:\\.\\d+)?)\\s*([a-zA-Z]*)\\s*");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private HfCheckpointWriter() {
    }

    /**
     * What a save wrote and removed.
     *
     * @param files   the weight files written (one {@code model.safetensors}, or the shards)
     * @param index   the index written, or null for a single file
     * @param removed weight files of an earlier save that the new layout replaced or made stale, now deleted
     */
    public record Result(List<Path> files, Path index, List<Path> removed) {
    }

    /**
     * Parses a shard size: plain bytes ({@code 2000000}) or a number with a unit, decimal {@code KB MB GB TB} or binary
     * {@code KiB MiB GiB TiB} (case-insensitive; {@code B} = bytes), as transformers reads {@code max_shard_size}.
     *
     * @throws IllegalArgumentException naming the value when it is malformed or not positive
     */
    public static long parseSize(String text) {
        Matcher m = text == null ? null : SIZE.matcher(text);
        if (m == null || !m.matches()) {
            throw new IllegalArgumentException("invalid size '" + text + "' (expected bytes or a number with a unit,"
                    + " e.g. 2000000, 500MB, 5GB, 1GiB)");
        }
        long unit = switch (m.group(2).toLowerCase(Locale.ROOT)) {
            case "", "b" -> 1L;
            case "kb" -> 1_000L;
            case "mb" -> 1_000_000L;
            case "gb" -> 1_000_000_000L;
            case "tb" -> 1_000_000_000_000L;
            case "kib" -> 1L << 10;
            case "mib" -> 1L << 20;
            case "gib" -> 1L << 30;
            case "tib" -> 1L << 40;
            default -> throw new IllegalArgumentException("invalid size '" + text + "': unknown unit '" + m.group(2)
                    + "' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)");
        };
        double value = Double.parseDouble(m.group(1)) * unit;
        if (!(value >= 1) || value > Long.MAX_VALUE) {
            throw new IllegalArgumentException("invalid size '" + text + "': must be at least 1 byte");
        }
        return (long) value;
    }

    /** The shard file name {@code model-0000i-of-0000n.safetensors} (i from 1). */
    public static String shardName(int i, int n) {
        return String.format(Locale.ROOT, "model-%05d-of-%05d.safetensors", i, n);
    }

    /**
     * Writes {@code tensors} into {@code dir} (created if missing), then the {@code extraFiles} (e.g.
     * {@code config.json}) after the weights.
     *
     * @param floatDTypes  the dtype of each floating-point tensor by name (null keeps the array's own dtype)
     * @param maxShardBytes the largest data size of one shard, at least 1
     * @param extraFiles   file name → content, written into the temp directory with the weights and moved in last
     */
    public static Result write(Path dir, Map<String, INDArray> tensors, Map<String, String> metadata,
                               Function<String, SafetensorsDType> floatDTypes, long maxShardBytes,
                               Map<String, AtomicFiles.Content> extraFiles) throws IOException {
        if (maxShardBytes < 1) {
            throw new IllegalArgumentException("max shard size must be at least 1 byte, got " + maxShardBytes);
        }
        Map<String, INDArray> sorted = new TreeMap<>(tensors);
        List<Map<String, INDArray>> shards = plan(sorted, floatDTypes, maxShardBytes);
        Path target = dir.toAbsolutePath().normalize();
        Files.createDirectories(target);
        Path temp = target.resolveSibling("." + target.getFileName() + "."
                + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 1) + ".tmp");
        Files.createDirectory(temp);
        try {
            List<String> names = new ArrayList<>();
            Map<String, String> weightMap = new TreeMap<>();
            long total = 0;
            for (int i = 0; i < shards.size(); i++) {
                String name = shards.size() == 1 ? SafetensorsCheckpoint.SINGLE_FILE : shardName(i + 1, shards.size());
                SafetensorsWriter.write(temp.resolve(name), shards.get(i), metadata, floatDTypes);
                names.add(name);
                for (Map.Entry<String, INDArray> e : shards.get(i).entrySet()) {
                    weightMap.put(e.getKey(), name);
                    total += SafetensorsWriter.dataBytes(e.getValue(), dtypeOf(e.getKey(), e.getValue(), floatDTypes));
                }
            }
            boolean sharded = shards.size() > 1;
            if (sharded) {
                Map<String, Object> index = new LinkedHashMap<>();
                index.put("metadata", Map.of("total_size", total));
                index.put("weight_map", weightMap);
                AtomicFiles.writeString(temp.resolve(SafetensorsCheckpoint.INDEX_FILE),
                        JSON.writeValueAsString(index) + "\n");
            }
            for (Map.Entry<String, AtomicFiles.Content> e : extraFiles.entrySet()) {
                AtomicFiles.write(temp.resolve(e.getKey()), e.getValue());
            }
            return moveIn(temp, target, names, sharded, extraFiles.keySet());
        } finally {
            deleteRecursively(temp);
        }
    }

    /** Splits the sorted tensors into shards of at most {@code maxShardBytes} of data (an oversized tensor alone). */
    private static List<Map<String, INDArray>> plan(Map<String, INDArray> sorted,
                                                    Function<String, SafetensorsDType> floatDTypes, long maxShardBytes) {
        List<Map<String, INDArray>> shards = new ArrayList<>();
        Map<String, INDArray> current = new LinkedHashMap<>();
        long currentBytes = 0;
        for (Map.Entry<String, INDArray> e : sorted.entrySet()) {
            if (e.getValue() == null) {
                throw new IllegalArgumentException("tensor '" + e.getKey() + "' is null");
            }
            long bytes = SafetensorsWriter.dataBytes(e.getValue(), dtypeOf(e.getKey(), e.getValue(), floatDTypes));
            if (!current.isEmpty() && currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new LinkedHashMap<>();
                currentBytes = 0;
            }
            current.put(e.getKey(), e.getValue());
            currentBytes += bytes;
        }
        shards.add(current); // an empty state dict is one empty model.safetensors
        return shards;
    }

    private static SafetensorsDType dtypeOf(String name, INDArray array, Function<String, SafetensorsDType> floatDTypes) {
        SafetensorsDType override = floatDTypes == null ? null : floatDTypes.apply(name);
        return override != null && array.dataType().isFPType() ? override : SafetensorsDType.of(array.dataType());
    }

    private static Result moveIn(Path temp, Path target, List<String> names, boolean sharded, Set<String> extra)
            throws IOException {
        List<Path> removed = new ArrayList<>();
        // 1. no index may outlive the shards it names: the old one goes first
        Path index = target.resolve(SafetensorsCheckpoint.INDEX_FILE);
        if (Files.deleteIfExists(index) && !sharded) {
            removed.add(index);
        }
        // 2. a model.safetensors would shadow a new index (readers prefer the single file)
        Path single = target.resolve(SafetensorsCheckpoint.SINGLE_FILE);
        if (sharded && Files.deleteIfExists(single)) {
            removed.add(single);
        }
        // 3. the weight files, then the index
        List<Path> files = new ArrayList<>();
        for (String name : names) {
            files.add(move(temp.resolve(name), target.resolve(name)));
        }
        Path newIndex = sharded ? move(temp.resolve(SafetensorsCheckpoint.INDEX_FILE), index) : null;
        // 4. shards of an earlier save that the new index does not name
        List<Path> stale;
        try (Stream<Path> list = Files.list(target)) {
            stale = list.filter(p -> SHARD_NAME.matcher(p.getFileName().toString()).matches())
                    .filter(p -> !names.contains(p.getFileName().toString()))
                    .sorted().toList();
        }
        for (Path p : stale) {
            Files.deleteIfExists(p);
            removed.add(p);
        }
        // 5. the rest (config.json) once the weights are in place
        for (String name : extra) {
            move(temp.resolve(name), target.resolve(name));
        }
        return new Result(List.copyOf(files), newIndex, List.copyOf(removed));
    }

    private static Path move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
        return to;
    }

    private static void deleteRecursively(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // a leftover .<name>.<random>.tmp directory beside the target is harmless and recognisable
        }
    }
}
