package org.dl4jmtp.io;

import com.fasterxml.jackson.databind.JsonNode;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * A Hugging Face style checkpoint: one {@code .safetensors} file, a directory holding {@code model.safetensors}, or a
 * directory sharded with {@code model.safetensors.index.json} (<code>{"metadata": {...}, "weight_map":
 * {name: shard file}}</code>). All layouts offer the same read API as {@link SafetensorsFile}.
 *
 * <p>For a sharded checkpoint, {@link #open(Path)} checks that every shard exists, that every key of the weight map is
 * present in its shard and that no tensor name appears in two shards. {@link #keys()} are the weight-map keys; a
 * tensor a shard holds but the index does not list is not exposed (as in {@code transformers}).
 */
public final class SafetensorsCheckpoint implements AutoCloseable {

    /** File name of a single-file checkpoint inside a directory. */
    public static final String SINGLE_FILE = "model.safetensors";
    /** File name of the shard index inside a directory. */
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private static final long MAX_INDEX_BYTES = SafetensorsFile.MAX_HEADER_BYTES;

    private final Path source;
    private final List<SafetensorsFile> shards;
    private final Map<String, SafetensorsFile> shardByKey;
    private final Map<String, String> metadata;

    private SafetensorsCheckpoint(Path source, List<SafetensorsFile> shards, Map<String, SafetensorsFile> shardByKey,
                                  Map<String, String> metadata) {
        this.source = source;
        this.shards = List.copyOf(shards);
        this.shardByKey = Collections.unmodifiableMap(shardByKey);
        this.metadata = Collections.unmodifiableMap(metadata);
    }

    /**
     * Opens a checkpoint. A directory holding both {@code model.safetensors} and an index is read from the single
     * file, as {@code transformers} does; a path ending in {@code .index.json} is read as an index.
     *
     * @throws NoSuchFileException         when the path, or a directory's checkpoint file, does not exist
     * @throws SafetensorsFormatException  for a malformed file or index, a missing shard, a key missing from its
     *                                     shard or a key present in two shards
     */
    public static SafetensorsCheckpoint open(Path dirOrFile) throws IOException {
        if (Files.isDirectory(dirOrFile)) {
            Path single = dirOrFile.resolve(SINGLE_FILE);
            if (Files.isRegularFile(single)) {
                return openSingle(single);
            }
            Path index = dirOrFile.resolve(INDEX_FILE);
            if (Files.isRegularFile(index)) {
                return openSharded(index);
            }
            throw new NoSuchFileException(dirOrFile.toString(), null,
                    "directory holds neither " + SINGLE_FILE + " nor " + INDEX_FILE);
        }
        if (!Files.isRegularFile(dirOrFile)) {
            throw new NoSuchFileException(dirOrFile.toString(), null, "no safetensors checkpoint here");
        }
        return dirOrFile.getFileName().toString().endsWith(".index.json")
                ? openSharded(dirOrFile) : openSingle(dirOrFile);
    }

    private static SafetensorsCheckpoint openSingle(Path file) throws IOException {
        SafetensorsFile st = SafetensorsFile.open(file);
        Map<String, SafetensorsFile> byKey = new TreeMap<>();
        for (String key : st.keys()) {
            byKey.put(key, st);
        }
        return new SafetensorsCheckpoint(file, List.of(st), byKey, st.metadata());
    }

    private static SafetensorsCheckpoint openSharded(Path index) throws IOException {
        long size = Files.size(index);
        if (size > MAX_INDEX_BYTES) {
            throw new SafetensorsFormatException(index, "index is " + size + " bytes (limit " + MAX_INDEX_BYTES + ")");
        }
        JsonNode root = SafetensorsFile.parseJsonObject(index, ByteBuffer.wrap(Files.readAllBytes(index)), "index");
        Map<String, String> shardNameByKey = weightMap(index, root);
        Map<String, String> metadata = indexMetadata(index, root.get("metadata"));

        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            Map<String, SafetensorsFile> shardByName = openShards(index, shardNameByKey, opened);
            Map<String, SafetensorsFile> byKey = new TreeMap<>();
            for (Map.Entry<String, String> e : shardNameByKey.entrySet()) {
                SafetensorsFile shard = shardByName.get(e.getValue());
                if (!shard.contains(e.getKey())) {
                    throw new SafetensorsFormatException(index, "weight_map maps '" + e.getKey() + "' to shard '"
                            + e.getValue() + "', which has no such tensor");
                }
                byKey.put(e.getKey(), shard);
            }
            checkNoKeyInTwoShards(index, opened);
            return new SafetensorsCheckpoint(index, opened, byKey, metadata);
        } catch (IOException | RuntimeException | Error e) {
            for (SafetensorsFile f : opened) {
                f.close();
            }
            throw e;
        }
    }

    private static Map<String, String> weightMap(Path index, JsonNode root) throws SafetensorsFormatException {
        JsonNode map = root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new SafetensorsFormatException(index, "index has no 'weight_map' object");
        }
        Map<String, String> shardNameByKey = new TreeMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            if (!e.getValue().isTextual()) {
                throw new SafetensorsFormatException(index, "weight_map value of '" + e.getKey()
                        + "' is not a file name string");
            }
            shardNameByKey.put(e.getKey(), e.getValue().textValue());
        }
        return shardNameByKey;
    }

    /** HF index metadata holds numbers too (e.g. {@code total_size}); values are exposed as their JSON text. */
    private static Map<String, String> indexMetadata(Path index, JsonNode node) throws SafetensorsFormatException {
        Map<String, String> metadata = new TreeMap<>();
        if (node == null || node.isNull()) {
            return metadata;
        }
        if (!node.isObject()) {
            throw new SafetensorsFormatException(index, "index 'metadata' is not a JSON object");
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            metadata.put(e.getKey(), e.getValue().isTextual() ? e.getValue().textValue() : e.getValue().toString());
        }
        return metadata;
    }

    /** Opens each distinct shard once; {@code opened} collects them so the caller can close them on failure. */
    private static Map<String, SafetensorsFile> openShards(Path index, Map<String, String> shardNameByKey,
                                                           List<SafetensorsFile> opened) throws IOException {
        Path dir = index.toAbsolutePath().getParent().normalize();
        Map<String, SafetensorsFile> shardByName = new HashMap<>();
        for (Map.Entry<String, String> e : shardNameByKey.entrySet()) {
            String name = e.getValue();
            if (shardByName.containsKey(name)) {
                continue;
            }
            Path shardPath;
            try {
                shardPath = dir.resolve(name).normalize();
            } catch (java.nio.file.InvalidPathException invalid) {
                throw new SafetensorsFormatException(index, "shard '" + name + "' (for '" + e.getKey()
                        + "') is not a valid file name: " + invalid.getReason());
            }
            // an index must not point outside its directory
            if (name.isEmpty() || shardPath.getParent() == null || !shardPath.getParent().equals(dir)) {
                throw new SafetensorsFormatException(index, "shard '" + name + "' (for '" + e.getKey()
                        + "') is not a file name in the index directory");
            }
            if (!Files.isRegularFile(shardPath)) {
                throw new SafetensorsFormatException(index, "shard '" + name + "' (for '" + e.getKey()
                        + "') does not exist: " + shardPath);
            }
            SafetensorsFile shard = SafetensorsFile.open(shardPath);
            opened.add(shard);
            shardByName.put(name, shard);
        }
        return shardByName;
    }

    private static void checkNoKeyInTwoShards(Path index, List<SafetensorsFile> shards)
            throws SafetensorsFormatException {
        Map<String, Path> seen = new HashMap<>();
        for (SafetensorsFile shard : shards) {
            for (String key : shard.keys()) {
                Path previous = seen.putIfAbsent(key, shard.path());
                if (previous != null) {
                    throw new SafetensorsFormatException(index, "tensor '" + key + "' appears in two shards: "
                            + previous.getFileName() + " and " + shard.path().getFileName());
                }
            }
        }
    }

    /** The file that was opened: the single safetensors file or the index. */
    public Path path() {
        return source;
    }

    /** The safetensors files of this checkpoint (one unless sharded). */
    public List<Path> files() {
        return shards.stream().map(SafetensorsFile::path).toList();
    }

    /** Tensor names, sorted. */
    public Set<String> keys() {
        return shardByKey.keySet();
    }

    /** Number of tensors. */
    public int size() {
        return shardByKey.size();
    }

    /** Whether the checkpoint holds a tensor of this name. */
    public boolean contains(String name) {
        return shardByKey.containsKey(name);
    }

    /** The file a tensor is stored in. */
    public Path fileOf(String name) {
        return shard(name).path();
    }

    /**
     * Header entry of a tensor (its byte range is relative to its own file).
     *
     * @throws IllegalArgumentException naming the key and the checkpoint when there is no such tensor
     */
    public SafetensorsTensorInfo info(String name) {
        return shard(name).info(name);
    }

    /** See {@link SafetensorsFile#get(String)}. */
    public INDArray get(String name) {
        return shard(name).get(name);
    }

    /** See {@link SafetensorsFile#readInto(String, long, INDArray)}. */
    public void readInto(String name, long firstElement, INDArray dest) {
        shard(name).readInto(name, firstElement, dest);
    }

    /** See {@link SafetensorsFile#get(String, DataType)}. */
    public INDArray get(String name, DataType target) {
        return shard(name).get(name, target);
    }

    /**
     * The single file's {@code __metadata__}, or the index's {@code metadata} (non-string values as JSON text).
     */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Closes every shard. */
    @Override
    public void close() {
        RuntimeException first = null;
        for (SafetensorsFile f : shards) {
            try {
                f.close();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return "SafetensorsCheckpoint[" + source + ", " + shardByKey.size() + " tensors in " + shards.size()
                + " file(s)]";
    }

    private SafetensorsFile shard(String name) {
        SafetensorsFile shard = shardByKey.get(name);
        if (shard == null) {
            throw new IllegalArgumentException("no tensor '" + name + "' in checkpoint " + source + " ("
                    + shardByKey.size() + " tensors)");
        }
        return shard;
    }
}
