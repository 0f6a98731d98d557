package org.dl4jmtp.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Sharded HF export: layout, index, re-load, stale files, sizes; and indexes the reader must reject. */
class HfCheckpointWriterTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    /** Five float tensors of 40, 40, 40, 80 and 8 bytes (as F32). */
    private static Map<String, INDArray> tensors() {
        Map<String, INDArray> t = new TreeMap<>();
        for (int i = 0; i < 3; i++) {
            float[] v = new float[10];
            for (int j = 0; j < v.length; j++) {
                v[j] = i * 100 + j + 0.25f;
            }
            t.put("layer." + i + ".weight", Nd4j.createFromArray(v));
        }
        t.put("layer.3.weight", Nd4j.linspace(1, 20, 20).castTo(org.nd4j.linalg.api.buffer.DataType.FLOAT).reshape(4, 5));
        t.put("norm.weight", Nd4j.createFromArray(1.5f, -2f));
        return t;
    }

    private static List<String> names(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void oneShardIsASingleFileWithoutIndex() throws IOException {
        Path out = dir.resolve("out");
        HfCheckpointWriter.Result r = HfCheckpointWriter.write(out, tensors(), Map.of("format", "pt"), null,
                HfCheckpointWriter.DEFAULT_MAX_SHARD_BYTES, Map.of());
        assertEquals(List.of("model.safetensors"), names(out));
        assertNull(r.index());
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(out)) {
            assertEquals(5, c.size());
        }
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of("out"), s.map(p -> p.getFileName().toString()).toList(), "no temp dir left");
        }
    }

    @Test
    void shardedExportReloadsToTheSameTensors() throws IOException {
        Path out = dir.resolve("out");
        Map<String, INDArray> t = tensors();
        // 100-byte shards: {layer.0, layer.1} 80, {layer.2} 40 (+80 > 100), {layer.3} 80, {norm} 8 (80+8 <= 100 joins)
        HfCheckpointWriter.Result r = HfCheckpointWriter.write(out, t, Map.of("format", "pt"), null, 100,
                Map.of("config.json", p -> Files.writeString(p, "{}")));
        assertEquals(List.of("config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors", "model.safetensors.index.json"), names(out));
        assertEquals(3, r.files().size());

        JsonNode index = JSON.readTree(out.resolve("model.safetensors.index.json").toFile());
        assertEquals(40 + 40 + 40 + 80 + 8, index.get("metadata").get("total_size").asLong());
        assertEquals("model-00001-of-00003.safetensors", index.get("weight_map").get("layer.1.weight").asText());
        assertEquals("model-00002-of-00003.safetensors", index.get("weight_map").get("layer.2.weight").asText());
        assertEquals("model-00003-of-00003.safetensors", index.get("weight_map").get("norm.weight").asText());
        assertEquals(5, index.get("weight_map").size());

        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(out)) {
            assertEquals(t.keySet(), c.keys());
            for (Map.Entry<String, INDArray> e : t.entrySet()) {
                assertArrayEquals(e.getValue().shape(), c.get(e.getKey()).shape(), e.getKey());
                assertArrayEquals(e.getValue().ravel().toFloatVector(), c.get(e.getKey()).ravel().toFloatVector(),
                        e.getKey());
            }
        }
    }

    @Test
    void bf16ShardsCountTwoBytesPerElement() throws IOException {
        Path out = dir.resolve("out");
        HfCheckpointWriter.write(out, tensors(), null, name -> SafetensorsDType.BF16, 40, Map.of());
        JsonNode index = JSON.readTree(out.resolve("model.safetensors.index.json").toFile());
        assertEquals(20 + 20 + 20 + 40 + 4, index.get("metadata").get("total_size").asLong());
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(out)) {
            assertEquals(SafetensorsDType.BF16, c.info("layer.3.weight").dtype());
            // 0.25 + small integers are exact in bf16 up to 8 significant bits: 1..20 and 1.5, -2 are
            assertArrayEquals(new float[] {1.5f, -2f}, c.get("norm.weight").toFloatVector());
        }
    }

    @Test
    void anEarlierSavesStaleWeightFilesAreRemoved() throws IOException {
        Path out = dir.resolve("out");
        Files.createDirectories(out);
        Files.writeString(out.resolve("README.md"), "kept");
        HfCheckpointWriter.write(out, tensors(), null, null, 100, Map.of());
        assertEquals(4, names(out).stream().filter(n -> n.startsWith("model")).count());

        // fewer, larger shards: the three old shards and the old index go
        HfCheckpointWriter.Result two = HfCheckpointWriter.write(out, tensors(), null, null, 130, Map.of());
        assertEquals(List.of("README.md", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                "model.safetensors.index.json"), names(out));
        assertEquals(3, two.removed().size(), two.removed().toString());

        // one file: the shards and the index go
        HfCheckpointWriter.Result one = HfCheckpointWriter.write(out, tensors(), null, null, 1_000_000, Map.of());
        assertEquals(List.of("README.md", "model.safetensors"), names(out));
        assertEquals(new TreeSet<>(List.of("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                "model.safetensors.index.json")), new TreeSet<>(one.removed().stream()
                .map(p -> p.getFileName().toString()).toList()));

        // and back to shards: model.safetensors would shadow the index, so it goes
        HfCheckpointWriter.Result again = HfCheckpointWriter.write(out, tensors(), null, null, 100, Map.of());
        assertFalse(Files.exists(out.resolve("model.safetensors")));
        assertEquals(List.of(out.resolve("model.safetensors")), again.removed());
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(out)) {
            assertEquals(5, c.size());
        }
    }

    @Test
    void sizesParseLikeTransformers() {
        assertEquals(5_000_000_000L, HfCheckpointWriter.parseSize("5GB"));
        assertEquals(500_000_000L, HfCheckpointWriter.parseSize("500MB"));
        assertEquals(500_000_000L, HfCheckpointWriter.parseSize("500mb"));
        assertEquals(2_000_000L, HfCheckpointWriter.parseSize("2000000"));
        assertEquals(1L << 30, HfCheckpointWriter.parseSize("1GiB"));
        assertEquals(1_500_000L, HfCheckpointWriter.parseSize("1.5MB"));
        for (String bad : new String[] {"", "5XB", "-1", "0", "GB", "5 G B", "1e3"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> HfCheckpointWriter.parseSize(bad), bad);
            assertTrue(e.getMessage().contains("'" + bad + "'"), e.getMessage());
        }
    }

    // ---- indexes the reader rejects, by name ----

    private Path shardedCheckpoint() throws IOException {
        Path out = dir.resolve("ckpt");
        HfCheckpointWriter.write(out, tensors(), null, null, 100, Map.of());
        return out;
    }

    private static void rewriteWeightMap(Path ckpt, String key, String file) throws IOException {
        Path index = ckpt.resolve(SafetensorsCheckpoint.INDEX_FILE);
        com.fasterxml.jackson.databind.node.ObjectNode root = (com.fasterxml.jackson.databind.node.ObjectNode)
                JSON.readTree(index.toFile());
        ((com.fasterxml.jackson.databind.node.ObjectNode) root.get("weight_map")).put(key, file);
        Files.writeString(index, JSON.writeValueAsString(root));
    }

    private static String rejection(Path ckpt) {
        return assertThrows(SafetensorsFormatException.class, () -> SafetensorsCheckpoint.open(ckpt)).getMessage();
    }

    @Test
    void indexNamingAMissingShardIsRejected() throws IOException {
        Path ckpt = shardedCheckpoint();
        Files.delete(ckpt.resolve("model-00002-of-00003.safetensors"));
        String m = rejection(ckpt);
        assertTrue(m.contains("model-00002-of-00003.safetensors") && m.contains("does not exist"), m);
    }

    @Test
    void tensorListedTwiceIsRejected() throws IOException {
        Path ckpt = shardedCheckpoint();
        // the same key twice in the weight map
        Path index = ckpt.resolve(SafetensorsCheckpoint.INDEX_FILE);
        String text = Files.readString(index);
        Files.writeString(index, text.replaceFirst("\"weight_map\"\\s*:\\s*\\{",
                "\"weight_map\":{\"norm.weight\":\"model-00001-of-00003.safetensors\","));
        String m = rejection(ckpt);
        assertTrue(m.contains("duplicate key") && m.contains("norm.weight"), m);

        // the same tensor stored in two shards
        Path again = dir.resolve("again");
        HfCheckpointWriter.write(again, tensors(), null, null, 100, Map.of());
        SafetensorsWriter.write(again.resolve("model-00003-of-00003.safetensors"), Map.of(
                "layer.3.weight", Nd4j.zeros(4, 5), "norm.weight", Nd4j.createFromArray(1.5f, -2f),
                "layer.0.weight", Nd4j.zeros(10)), null);
        String twice = rejection(again);
        assertTrue(twice.contains("'layer.0.weight' appears in two shards"), twice);
    }

    @Test
    void shardPathOutsideTheDirectoryIsRejected() throws IOException {
        Path ckpt = shardedCheckpoint();
        Files.copy(ckpt.resolve("model-00003-of-00003.safetensors"), dir.resolve("outside.safetensors"));
        for (String name : new String[] {"../outside.safetensors", dir.resolve("outside.safetensors").toString(),
                "sub/../../outside.safetensors", "", "."}) {
            rewriteWeightMap(ckpt, "norm.weight", name);
            String m = rejection(ckpt);
            assertTrue(m.contains("'" + name + "'") && m.contains("norm.weight")
                    && m.contains("not a file name in the index directory"), name + ": " + m);
        }
        rewriteWeightMap(ckpt, "norm.weight", "bad\u0000name");
        String nul = rejection(ckpt);
        assertTrue(nul.contains("norm.weight"), nul);
    }
}
