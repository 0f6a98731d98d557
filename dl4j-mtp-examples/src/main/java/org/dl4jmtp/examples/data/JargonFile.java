package org.dl4jmtp.examples.data;

import org.dl4jmtp.io.AtomicFiles;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

/**
 * The default corpus: the Jargon File 4.4.7 (public domain), from Debian's {@code jargon-text} package. Obtained only
 * through apt ({@code apt-get download}, no root needed; one {@code apt-get update} retry), extracted with
 * {@code dpkg-deb -x}, gunzipped and cached atomically as {@code dataDir/jargon.txt}.
 */
final class JargonFile {

    static final String PACKAGE = "jargon-text";
    static final String ENTRY_IN_PACKAGE = "usr/share/doc/jargon-text/jargon.txt.gz";
    static final String CACHE_FILE = "jargon.txt";
    /** Documents are grown to at least this many chars, then closed at the next entry boundary. */
    static final int TARGET_DOCUMENT_CHARS = 16 * 1024;
    private static final long COMMAND_TIMEOUT_SECONDS = 300;
    /** An entry ("   :word: n.") or a heading (no indent) starts after a blank line. */
    private static final Pattern ENTRY_START = Pattern.compile("(\\S|   :\\S)");

    private JargonFile() {
    }

    static Corpus load(Path dataDir) {
        Path cached = dataDir.resolve(CACHE_FILE);
        try {
            if (!Files.isRegularFile(cached) || Files.size(cached) == 0) {
                fetch(dataDir, cached);
            }
        } catch (IOException | RuntimeException e) {
            throw new CorpusUnavailableException("Could not get the default corpus (the Jargon File, Debian package "
                    + PACKAGE + ") into " + cached.toAbsolutePath() + ": " + e.getMessage(), e);
        }
        return new Corpus("jargon", split(Corpus.readUtf8(cached), TARGET_DOCUMENT_CHARS));
    }

    /**
     * Splits the text into documents of at least {@code targetChars} (the last may be shorter), each ending just
     * before an entry or heading line that follows a blank line. Concatenating the documents gives back the text.
     */
    static List<Corpus.Document> split(String text, int targetChars) {
        List<Corpus.Document> documents = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        boolean previousBlank = false;
        int start = 0;
        while (start < text.length()) {
            int newline = text.indexOf('\n', start);
            int end = newline < 0 ? text.length() : newline + 1;
            String line = text.substring(start, end);
            if (previousBlank && current.length() >= targetChars && ENTRY_START.matcher(line).lookingAt()) {
                documents.add(new Corpus.Document(CACHE_FILE + "#" + documents.size(), current.toString()));
                current.setLength(0);
            }
            current.append(line);
            previousBlank = line.isBlank();
            start = end;
        }
        if (current.length() > 0) {
            documents.add(new Corpus.Document(CACHE_FILE + "#" + documents.size(), current.toString()));
        }
        return documents;
    }

    private static void fetch(Path dataDir, Path target) throws IOException {
        Files.createDirectories(dataDir);
        // absolute: the tools run with the work folder as their working directory
        Path work = Files.createTempDirectory(dataDir, "jargon-download-").toAbsolutePath();
        try {
            if (run(work, "apt-get", "download", PACKAGE) != 0) {
                run(work, "apt-get", "update");                      // stale package lists: refresh once and retry
                if (run(work, "apt-get", "download", PACKAGE) != 0) {
                    throw new IOException("'apt-get download " + PACKAGE + "' failed: " + tail(work.resolve("log.txt")));
                }
            }
            Path deb;
            try (Stream<Path> files = Files.list(work)) {
                deb = files.filter(p -> p.getFileName().toString().endsWith(".deb")).findFirst()
                        .orElseThrow(() -> new IOException("apt-get download produced no .deb file"));
            }
            Path extracted = work.resolve("extracted");
            if (run(work, "dpkg-deb", "-x", deb.toString(), extracted.toString()) != 0) {
                throw new IOException("'dpkg-deb -x' failed: " + tail(work.resolve("log.txt")));
            }
            Path gz = extracted.resolve(ENTRY_IN_PACKAGE);
            if (!Files.isRegularFile(gz)) {
                throw new IOException(ENTRY_IN_PACKAGE + " is not in " + deb.getFileName());
            }
            AtomicFiles.write(target, temp -> {
                try (InputStream in = new GZIPInputStream(Files.newInputStream(gz));
                     OutputStream out = Files.newOutputStream(temp)) {
                    in.transferTo(out);
                }
            });
        } finally {
            deleteRecursively(work);
        }
    }

    /** Runs a command in {@code dir}, output appended to {@code dir/log.txt}; returns the exit code. */
    private static int run(Path dir, String... command) throws IOException {
        Process process = new ProcessBuilder(command)
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("log.txt").toFile()))
                .start();
        try {
            if (!process.waitFor(COMMAND_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new IOException(String.join(" ", command) + " timed out after " + COMMAND_TIMEOUT_SECONDS + " s");
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("Interrupted while running " + String.join(" ", command), e);
        }
        return process.exitValue();
    }

    private static String tail(Path log) {
        try {
            String text = new String(Files.readAllBytes(log), StandardCharsets.UTF_8).strip();
            return text.length() <= 600 ? text : "…" + text.substring(text.length() - 600);
        } catch (IOException e) {
            return "(no output)";
        }
    }

    private static void deleteRecursively(Path dir) {
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // best effort: a leftover temp folder under data/ is harmless
        }
    }
}
