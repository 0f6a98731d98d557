package org.dl4jmtp.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The writer replaces files atomically and never leaves temporary or half-written files behind. */
class SafetensorsWriterAtomicTest {

    @TempDir
    Path dir;

    private List<String> leftovers() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".tmp")).toList();
        }
    }

    @Test
    void overwritingReplacesTheFile() throws IOException {
        Path file = dir.resolve("model.safetensors");
        SafetensorsWriter.write(file, Map.of("old", Nd4j.createFromArray(1f, 2f, 3f)), null);
        SafetensorsWriter.write(file, Map.of("new", Nd4j.createFromArray(5.0)), Map.of("v", "2"));

        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals(List.of("new"), List.copyOf(st.keys()));
            assertEquals(5.0, st.get("new").getDouble(0));
            assertEquals(Map.of("v", "2"), st.metadata());
        }
        assertEquals(List.of(), leftovers());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(1, files.count(), "only the target file remains");
        }
    }

    @Test
    void rejectedTensorLeavesThePreviousFileIntact() throws IOException {
        Path file = dir.resolve("model.safetensors");
        SafetensorsWriter.write(file, Map.of("w", Nd4j.createFromArray(1f, 2f)), null);
        byte[] before = Files.readAllBytes(file);

        // UTF8 arrays cannot be stored; the good tensor sorts first, so a streaming writer would have started
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.write(file,
                Map.of("a_good", Nd4j.createFromArray(3f), "z_text", Nd4j.create("x")), null));

        assertArrayEquals(before, Files.readAllBytes(file));
        assertEquals(List.of(), leftovers());
    }

    @Test
    void failedMoveDeletesTheTemporaryFile() throws IOException {
        // the target is a non-empty directory: data is fully written to the temp file, then the rename fails
        Path target = dir.resolve("occupied.safetensors");
        Files.createDirectory(target);
        Path keep = Files.writeString(target.resolve("keep.txt"), "keep");

        assertThrows(IOException.class,
                () -> SafetensorsWriter.write(target, Map.of("w", Nd4j.createFromArray(1f, 2f)), null));

        assertTrue(Files.isDirectory(target));
        assertEquals("keep", Files.readString(keep));
        assertEquals(List.of(), leftovers());
    }
}
