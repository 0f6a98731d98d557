package org.dl4jmtp.examples.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * A named list of text documents: the unit the data pipeline tokenizes, splits (train/validation per document) and
 * packs (document ids keep predictions from crossing a document boundary).
 *
 * <p>Sources: {@link #fromPath} (the user's file or folder of {@code .txt}), {@link #jargonFile} (the default corpus,
 * from Debian's {@code jargon-text} package through apt) and {@link #synthetic} (generated text with learnable
 * structure, for tests).
 */
public final class Corpus {

    /** One document: a name (file name, chunk label) and its text. */
    public record Document(String name, String text) {
    }

    private final String name;
    private final List<Document> documents;

    /**
     * @throws IllegalArgumentException if there is no document or every document is empty
     */
    public Corpus(String name, List<Document> documents) {
        this.name = name;
        this.documents = List.copyOf(documents);
        if (this.documents.stream().allMatch(d -> d.text().isEmpty())) {
            throw new IllegalArgumentException("Corpus '" + name + "' has no text");
        }
    }

    /**
     * The text at {@code path}: a UTF-8 text file (one document), or a folder whose {@code .txt} files (searched
     * recursively, sorted by path, empty ones skipped) are one document each.
     *
     * @throws IllegalArgumentException if the path does not exist, holds no non-empty text, or a file is binary or
     *                                  not valid UTF-8 (see {@link #readUtf8})
     * @throws UncheckedIOException     if a file cannot be read
     */
    public static Corpus fromPath(Path path) {
        if (!Files.exists(path)) {
            throw new IllegalArgumentException("Corpus path does not exist: " + path.toAbsolutePath()
                    + " (pass a UTF-8 text file or a folder of .txt files)");
        }
        List<Path> files = new ArrayList<>();
        if (Files.isDirectory(path)) {
            try (Stream<Path> walk = Files.walk(path)) {
                walk.filter(Files::isRegularFile)
                        .filter(p -> p.getFileName().toString().toLowerCase().endsWith(".txt"))
                        .sorted()
                        .forEach(files::add);
            } catch (IOException e) {
                throw new UncheckedIOException("Cannot list " + path, e);
            }
        } else {
            files.add(path);
        }
        List<Document> documents = new ArrayList<>();
        for (Path file : files) {
            String text = readUtf8(file);
            if (!text.isEmpty()) {
                String docName = Files.isDirectory(path) ? path.relativize(file).toString() : file.getFileName().toString();
                documents.add(new Document(docName, text));
            }
        }
        if (documents.isEmpty()) {
            throw new IllegalArgumentException("No text in " + path.toAbsolutePath()
                    + (Files.isDirectory(path) ? " (no non-empty .txt file in this folder)" : " (the file is empty)"));
        }
        String corpusName = path.getFileName() == null ? path.toString() : path.getFileName().toString();
        return new Corpus(corpusName, documents);
    }

    /**
     * The default corpus: the Jargon File (public domain) from Debian's {@code jargon-text} package, cached as
     * {@code dataDir/jargon.txt} and split into documents of about 16 KB at entry boundaries. When it is not cached,
     * it is fetched with {@code apt-get download jargon-text} (nothing else is downloaded).
     *
     * @throws CorpusUnavailableException if it is not cached and cannot be fetched; the message says how to pass
     *                                    {@code --corpus FILE} instead
     */
    public static Corpus jargonFile(Path dataDir) {
        return JargonFile.load(dataDir);
    }

    /**
     * Generated English-like text with learnable structure (a small grammar over a fixed word list, nouns with
     * preferred verbs, a topic noun per document); ASCII only, so chars = bytes. Deterministic for a seed.
     *
     * @param charsPerDocument exact length of each document
     */
    public static Corpus synthetic(long seed, int documents, int charsPerDocument) {
        return SyntheticText.corpus(seed, documents, charsPerDocument);
    }

    public String name() {
        return name;
    }

    /** The documents, in order; their index is their document id in {@link TokenStream#encode}. */
    public List<Document> documents() {
        return documents;
    }

    public int size() {
        return documents.size();
    }

    /** Total UTF-8 size of all documents, in bytes. */
    public long totalBytes() {
        long bytes = 0;
        for (Document d : documents) {
            bytes += d.text().getBytes(StandardCharsets.UTF_8).length;
        }
        return bytes;
    }

    /** All documents tokenized into one stream with a document id per token. */
    public TokenStream encode(Tokenizer tokenizer) {
        return TokenStream.encode(this, tokenizer);
    }

    /**
     * Entropy of the unigram distribution of the corpus's tokens, in nats per token: the loss of the best model that
     * ignores context, the bar a trained model must get well under.
     */
    public double unigramEntropyNats(Tokenizer tokenizer) {
        return encode(tokenizer).unigramEntropyNats();
    }

    /** Conditional entropy H(next token | current token) within documents, in nats per token. */
    public double conditionalBigramEntropyNats(Tokenizer tokenizer) {
        return encode(tokenizer).conditionalBigramEntropyNats();
    }

    @Override
    public String toString() {
        return "Corpus(" + name + ", " + documents.size() + " documents)";
    }

    /**
     * The text of a UTF-8 file, strictly: training on replacement characters or on the bytes of a binary file would
     * silently teach the model garbage.
     *
     * @throws IllegalArgumentException naming the file and the byte offset of the first NUL byte (a binary file) or
     *                                  of the first malformed UTF-8 sequence, whichever comes first
     * @throws UncheckedIOException     if the file cannot be read
     */
    static String readUtf8(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException("Cannot read " + file, e);
        }
        return decodeUtf8(bytes, file.toString());
    }

    /**
     * {@code bytes} (the contents of the file {@code name}, e.g. read from a Hadoop file system) as text, strictly as
     * {@link #readUtf8}.
     *
     * @throws IllegalArgumentException naming the file and the byte offset of the first NUL byte or malformed sequence
     */
    public static String decodeUtf8(byte[] bytes, String name) {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length); // UTF-8 never decodes to more chars than bytes
        CoderResult result = decoder.decode(in, out, true);
        if (!result.isError()) {
            result = decoder.flush(out);
        }
        int checked = result.isError() ? in.position() : bytes.length;
        for (int i = 0; i < checked; i++) {
            if (bytes[i] == 0) {
                throw new IllegalArgumentException(name + " is a binary file, not text: NUL byte at offset " + i);
            }
        }
        if (result.isError()) {
            throw new IllegalArgumentException(name + " is not valid UTF-8: malformed byte sequence at offset "
                    + in.position() + String.format(Locale.ROOT, " (0x%02X)", bytes[in.position()] & 0xFF));
        }
        return out.flip().toString();
    }
}
