package org.dl4jmtp.io;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;

/**
 * Writes a file so that its name only ever holds complete contents: the bytes go to a hidden temp file beside the
 * target ({@code .<name>.<random>.tmp}), are forced to disk, and the temp file is renamed over the target. A process
 * killed mid-write, or a full disk, leaves the previous file untouched and at most a stale temp file (which
 * {@link #isTempFile} recognises, so that a later run can remove it).
 *
 * <p>The temp file is created with the process's default permissions (umask), unlike {@code Files.createTempFile},
 * which makes it owner-only: checkpoints and exports are shared like any other file the user writes.
 *
 * <p>Testing hook: the system property {@value #WRITE_DELAY_PROPERTY} (milliseconds) pauses every write after its
 * bytes are in the temp file and before the rename, so that a test can kill the process in the middle of a write.
 */
public final class AtomicFiles {

    /** Milliseconds to pause between writing the temp file and renaming it (tests only; default 0). */
    public static final String WRITE_DELAY_PROPERTY = "dl4jmtp.test.atomicWriteDelayMs";

    private static final String TEMP_SUFFIX = ".tmp";

    /** Fills the (empty, already created) temp file. */
    @FunctionalInterface
    public interface Content {
        void writeTo(Path temp) throws IOException;
    }

    private AtomicFiles() {
    }

    /**
     * Writes {@code target} through a temp file in the same directory (created if missing).
     *
     * @throws IOException naming {@code target} when anything fails (the disk is full, the directory is read-only...);
     *                     the target then still holds what it held before
     */
    public static void write(Path target, Content content) throws IOException {
        Path abs = target.toAbsolutePath();
        Path dir = abs.getParent();
        Path temp = dir.resolve("." + abs.getFileName() + "."
                + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 1) + TEMP_SUFFIX);
        boolean moved = false;
        try {
            Files.createDirectories(dir);
            Files.newByteChannel(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
            content.writeTo(temp);
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                channel.force(true);
            }
            pauseForTests();
            try {
                Files.move(temp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
            moved = true;
        } catch (IOException e) {
            throw new IOException("cannot write " + abs + ": " + describe(e) + " (nothing was replaced: files"
                    + " written before are intact)", e);
        } finally {
            if (!moved) {
                try {
                    Files.deleteIfExists(temp);
                } catch (IOException ignored) {
                    // the original failure is what the user needs to see; the stale temp file is recognisable
                }
            }
        }
    }

    /** Writes {@code text} (UTF-8) to {@code target} atomically. */
    public static void writeString(Path target, String text) throws IOException {
        write(target, temp -> Files.writeString(temp, text, java.nio.charset.StandardCharsets.UTF_8));
    }

    /** True for the name of a temp file that {@link #write} leaves behind when the process dies mid-write. */
    public static boolean isTempFile(Path file) {
        String name = file.getFileName().toString();
        return name.startsWith(".") && name.endsWith(TEMP_SUFFIX);
    }

    /**
     * Deletes the temp files that writes killed mid-way left in {@code dir} (never complete files: a write that finished
     * renamed its temp file), and temp directories of a killed multi-file write (an HF export), with their contents.
     *
     * @return the files and directories deleted
     */
    public static List<Path> removeStaleTempFiles(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        List<Path> temps;
        try (Stream<Path> files = Files.list(dir)) {
            temps = files.filter(AtomicFiles::isTempFile).toList();
        }
        for (Path temp : temps) {
            if (Files.isDirectory(temp, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                try (Stream<Path> walk = Files.walk(temp)) {
                    for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                        Files.deleteIfExists(p);
                    }
                }
            } else {
                Files.deleteIfExists(temp);
            }
        }
        return temps;
    }

    private static String describe(IOException e) {
        String message = e.getMessage();
        if (e instanceof java.nio.file.FileSystemException fs && fs.getReason() != null) {
            return fs.getReason();
        }
        return message != null ? message : e.toString();
    }

    private static void pauseForTests() {
        long delay = Long.getLong(WRITE_DELAY_PROPERTY, 0L);
        if (delay > 0) {
            try {
                Thread.sleep(delay);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
