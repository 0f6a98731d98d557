package org.dl4jmtp.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Single-file and sharded (model.safetensors.index.json) checkpoints. */
class SafetensorsCheckpointTest {

    private static final String SHARD_1 = "model-00001-of-00002.safetensors";
    private static final String SHARD_2 = "model-00002-of-00002.safetensors";

    @TempDir
    Path dir;

    /** Two shards: {a, b} and {c}. */
    private void writeShards() throws IOException {
        SafetensorsWriter.write(dir.resolve(SHARD_1), Map.of(
                "a", Nd4j.createFromArray(new float[][] {{1, 2}, {3, 4}}),
                "b", Nd4j.createFromArray(7L, 8L, 9L)), Map.of("format", "pt"));
        SafetensorsWriter.write(dir.resolve(SHARD_2), Map.of(
                "c", Nd4j.createFromArray(0.5, 0.25)), Map.of("format", "pt"));
    }

    private void writeIndex(String weightMapJson) throws IOException {
        Files.writeString(dir.resolve(SafetensorsCheckpoint.INDEX_FILE),
                "{\"metadata\": {\"total_size\": 44, \"note\": \"two shards\"}, \"weight_map\": " + weightMapJson + "}");
    }

    @Test
    void shardedCheckpointReadsAcrossShards() throws IOException {
        writeShards();
        writeIndex("{\"a\": \"" + SHARD_1 + "\", \"b\": \"" + SHARD_1 + "\", \"c\": \"" + SHARD_2 + "\"}");

        for (Path entry : List.of(dir, dir.resolve(SafetensorsCheckpoint.INDEX_FILE))) {
            try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(entry)) {
                assertEquals(List.of("a", "b", "c"), List.copyOf(ckpt.keys()));
                assertEquals(3, ckpt.size());
                assertTrue(ckpt.contains("c"));
                assertEquals(Map.of("total_size", "44", "note", "two shards"), ckpt.metadata());
                assertEquals(2, ckpt.files().size());
                assertEquals(dir.resolve(SHARD_2).toAbsolutePath(), ckpt.fileOf("c").toAbsolutePath());

                assertArrayEquals(new float[][] {{1, 2}, {3, 4}}, ckpt.get("a").toFloatMatrix());
                assertArrayEquals(new long[] {7, 8, 9}, ckpt.get("b").toLongVector());
                assertEquals(DataType.DOUBLE, ckpt.get("c").dataType());
                assertArrayEquals(new float[] {0.5f, 0.25f}, ckpt.get("c", DataType.FLOAT).toFloatVector());
                assertEquals(SafetensorsDType.I64, ckpt.info("b").dtype());
                assertArrayEquals(new long[] {2, 2}, ckpt.info("a").shape());

                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ckpt.get("zz"));
                assertTrue(e.getMessage().contains("'zz'") && e.getMessage().contains(dir.toString()), e.getMessage());
            }
        }
    }

    @Test
    void missingShardIsRejected() throws IOException {
        writeShards();
        writeIndex("{\"a\": \"" + SHARD_1 + "\", \"c\": \"model-00003-of-00003.safetensors\"}");
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class,
                () -> SafetensorsCheckpoint.open(dir));
        assertTrue(e.getMessage().contains("model-00003-of-00003.safetensors")
                && e.getMessage().contains("does not exist")
                && e.getMessage().contains(SafetensorsCheckpoint.INDEX_FILE), e.getMessage());
    }

    @Test
    void keyMissingInItsShardIsRejected() throws IOException {
        writeShards();
        // "c" lives in shard 2 but the index points at shard 1
        writeIndex("{\"a\": \"" + SHARD_1 + "\", \"c\": \"" + SHARD_1 + "\"}");
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class,
                () -> SafetensorsCheckpoint.open(dir));
        assertTrue(e.getMessage().contains("'c'") && e.getMessage().contains(SHARD_1)
                && e.getMessage().contains("no such tensor"), e.getMessage());
    }

    @Test
    void keyInTwoShardsIsRejected() throws IOException {
        writeShards();
        SafetensorsWriter.write(dir.resolve(SHARD_2), Map.of(
                "a", Nd4j.scalar(1f), "c", Nd4j.createFromArray(0.5, 0.25)), null);
        writeIndex("{\"a\": \"" + SHARD_1 + "\", \"b\": \"" + SHARD_1 + "\", \"c\": \"" + SHARD_2 + "\"}");
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class,
                () -> SafetensorsCheckpoint.open(dir));
        assertTrue(e.getMessage().contains("'a' appears in two shards"), e.getMessage());
    }

    @Test
    void shardOutsideTheDirectoryIsRejected() throws IOException {
        writeShards();
        writeIndex("{\"a\": \"../" + SHARD_1 + "\"}");
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class,
                () -> SafetensorsCheckpoint.open(dir));
        assertTrue(e.getMessage().contains("not a file name in the index directory"), e.getMessage());
    }

    @Test
    void malformedIndexIsRejected() throws IOException {
        writeShards();
        Path index = dir.resolve(SafetensorsCheckpoint.INDEX_FILE);
        Files.writeString(index, "{\"metadata\": {}}");
        assertTrue(assertThrows(SafetensorsFormatException.class, () -> SafetensorsCheckpoint.open(dir))
                .getMessage().contains("no 'weight_map' object"));
        Files.writeString(index, "{\"weight_map\": {\"a\": 1}}");
        assertTrue(assertThrows(SafetensorsFormatException.class, () -> SafetensorsCheckpoint.open(dir))
                .getMessage().contains("weight_map value of 'a' is not a file name string"));
        Files.writeString(index, "{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}");
        assertTrue(assertThrows(SafetensorsFormatException.class, () -> SafetensorsCheckpoint.open(dir))
                .getMessage().contains("Duplicate field 'a'"));
    }

    @Test
    void singleFileLayouts() throws IOException {
        SafetensorsWriter.write(dir.resolve(SafetensorsCheckpoint.SINGLE_FILE),
                Map.of("w", Nd4j.createFromArray(1f, 2f)), Map.of("format", "pt"));
        try (SafetensorsCheckpoint fromDir = SafetensorsCheckpoint.open(dir);
             SafetensorsCheckpoint fromFile = SafetensorsCheckpoint.open(dir.resolve(SafetensorsCheckpoint.SINGLE_FILE))) {
            assertEquals(List.of("w"), List.copyOf(fromDir.keys()));
            assertEquals(Map.of("format", "pt"), fromDir.metadata());
            assertArrayEquals(new float[] {1f, 2f}, fromFile.get("w").toFloatVector());
        }
    }

    @Test
    void directoryWithoutCheckpointIsRejected() {
        NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> SafetensorsCheckpoint.open(dir));
        assertTrue(e.getMessage().contains(SafetensorsCheckpoint.INDEX_FILE), e.getMessage());
        assertThrows(NoSuchFileException.class, () -> SafetensorsCheckpoint.open(dir.resolve("missing.safetensors")));
    }
}
