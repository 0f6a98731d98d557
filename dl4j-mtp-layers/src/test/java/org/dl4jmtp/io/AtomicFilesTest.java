package org.dl4jmtp.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AtomicFilesTest {

    @Test
    void replacesTheTargetAndLeavesNoTempFile(@TempDir Path dir) throws Exception {
        Path target = dir.resolve("a.json");
        AtomicFiles.writeString(target, "old");
        AtomicFiles.writeString(target, "new");
        assertEquals("new", Files.readString(target));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(1, files.count(), "only the target is left");
        }
    }

    /** A real ENOSPC (Linux's /dev/full) in the middle of a write: the message names the target, the old file stays. */
    @Test
    void aFullDiskNamesTheTargetAndKeepsThePreviousFile(@TempDir Path dir) throws Exception {
        Path target = dir.resolve("model.safetensors");
        AtomicFiles.writeString(target, "complete previous contents");
        IOException e = assertThrows(IOException.class, () -> AtomicFiles.write(target, temp -> {
            Files.write(temp, new byte[1000]);
            Files.write(Path.of("/dev/full"), new byte[1 << 16]);   // what a full disk answers
        }));
        assertTrue(e.getMessage().contains(target.toAbsolutePath().toString()), e.getMessage());
        assertTrue(e.getMessage().contains("No space left on device"), e.getMessage());
        assertEquals("complete previous contents", Files.readString(target));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(1, files.count(), "the temp file of the failed write is removed");
        }
    }

    /** Files.createTempFile would make the file owner-only (0600); a written file has the user's usual permissions. */
    @Test
    void writesWithTheDefaultPermissionsOfNewFiles(@TempDir Path dir) throws Exception {
        Path plain = Files.writeString(dir.resolve("plain.txt"), "x");
        Path atomic = dir.resolve("atomic.txt");
        AtomicFiles.writeString(atomic, "x");
        Set<PosixFilePermission> expected = Files.getPosixFilePermissions(plain);
        assertEquals(expected, Files.getPosixFilePermissions(atomic));
    }

    @Test
    void recognisesItsTempFiles() {
        assertTrue(AtomicFiles.isTempFile(Path.of("/x/.step-000003.zip.1f2e.tmp")));
        assertFalse(AtomicFiles.isTempFile(Path.of("/x/step-000003.zip")));
        assertFalse(AtomicFiles.isTempFile(Path.of("/x/notes.tmp")));
    }

    /** A killed multi-file write leaves a temp directory (an HF export); the next run removes it with its contents. */
    @Test
    void removesStaleTempFilesAndTempDirectoriesButNothingElse(@TempDir Path dir) throws Exception {
        Path staleFile = Files.writeString(dir.resolve(".run.json.77.tmp"), "half");
        Path staleDir = Files.createDirectories(dir.resolve(".hf.1a2b.tmp"));
        Files.writeString(Files.createDirectories(staleDir.resolve("sub")).resolve(".model.safetensors.9.tmp"), "x");
        Path kept = Files.writeString(dir.resolve("run.json"), "{}");
        Path keptDir = Files.createDirectories(dir.resolve("hf"));
        assertEquals(Set.of(staleFile, staleDir), Set.copyOf(AtomicFiles.removeStaleTempFiles(dir)));
        assertFalse(Files.exists(staleFile));
        assertFalse(Files.exists(staleDir));
        assertTrue(Files.exists(kept) && Files.isDirectory(keptDir));
    }
}
