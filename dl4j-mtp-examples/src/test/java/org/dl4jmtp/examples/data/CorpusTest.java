package org.dl4jmtp.examples.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CorpusTest {

    private final ByteTokenizer bytes = new ByteTokenizer();

    @Test
    void readsOneFileAsOneDocument(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("mine.txt");
        Files.writeString(file, "Some text.\nMore text — ü.\n");
        Corpus corpus = Corpus.fromPath(file);
        assertEquals(1, corpus.size());
        assertEquals("mine.txt", corpus.documents().get(0).name());
        assertEquals("Some text.\nMore text — ü.\n", corpus.documents().get(0).text());
        assertEquals(Files.size(file), corpus.totalBytes());
    }

    @Test
    void readsAFolderOfTxtFilesSortedSkippingOthersAndEmpties(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("b.txt"), "bee");
        Files.writeString(dir.resolve("a.txt"), "ay");
        Files.writeString(dir.resolve("empty.txt"), "");
        Files.writeString(dir.resolve("notes.md"), "not a document");
        Files.createDirectories(dir.resolve("sub"));
        Files.writeString(dir.resolve("sub/c.txt"), "sea");
        Corpus corpus = Corpus.fromPath(dir);
        List<String> names = corpus.documents().stream().map(Corpus.Document::name).collect(Collectors.toList());
        assertEquals(List.of("a.txt", "b.txt", "sub" + dir.getFileSystem().getSeparator() + "c.txt"), names);
        assertEquals("ay", corpus.documents().get(0).text());
    }

    @Test
    void rejectsInvalidUtf8NamingTheFileAndOffset(@TempDir Path dir) throws Exception {
        Path truncated = dir.resolve("truncated.txt");
        Files.write(truncated, new byte[]{'o', 'k', (byte) 0xC3});
        String message = assertThrows(IllegalArgumentException.class, () -> Corpus.fromPath(truncated)).getMessage();
        assertTrue(message.contains(truncated + " is not valid UTF-8") && message.contains("offset 2 (0xC3)"), message);

        Files.createDirectories(dir.resolve("folder"));
        Files.writeString(dir.resolve("folder/a.txt"), "fine");
        Path latin1 = dir.resolve("folder/b.txt");
        Files.write(latin1, "caf\u00e9 au lait".getBytes(StandardCharsets.ISO_8859_1));
        message = assertThrows(IllegalArgumentException.class, () -> Corpus.fromPath(dir.resolve("folder")))
                .getMessage();
        assertTrue(message.contains(latin1.toString()) && message.contains("offset 3 (0xE9)"), message);
    }

    @Test
    void rejectsBinaryFilesAtTheFirstNulByte(@TempDir Path dir) throws Exception {
        Path binary = dir.resolve("model.txt");
        Files.write(binary, new byte[]{'P', 'K', 3, 4, 0, 0, (byte) 0xFF});
        String message = assertThrows(IllegalArgumentException.class, () -> Corpus.fromPath(binary)).getMessage();
        assertTrue(message.contains(binary + " is a binary file") && message.contains("NUL byte at offset 4"), message);
    }

    @Test
    void missingOrEmptyPathsFailClearly(@TempDir Path dir) throws Exception {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> Corpus.fromPath(dir.resolve("nope.txt")));
        assertTrue(missing.getMessage().contains("does not exist"), missing.getMessage());

        Path emptyFolder = Files.createDirectories(dir.resolve("empty"));
        Files.writeString(emptyFolder.resolve("x.md"), "no txt here");
        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class, () -> Corpus.fromPath(emptyFolder));
        assertTrue(empty.getMessage().contains("no non-empty .txt"), empty.getMessage());

        Path emptyFile = Files.writeString(dir.resolve("empty.txt"), "");
        assertThrows(IllegalArgumentException.class, () -> Corpus.fromPath(emptyFile));
    }

    @Test
    void syntheticCorpusIsDeterministicAsciiAndSized() {
        Corpus a = Corpus.synthetic(7, 5, 1000);
        Corpus b = Corpus.synthetic(7, 5, 1000);
        Corpus c = Corpus.synthetic(8, 5, 1000);
        assertEquals(5, a.size());
        assertEquals(5000, a.totalBytes());                       // ASCII: chars = bytes
        for (int i = 0; i < 5; i++) {
            assertEquals(1000, a.documents().get(i).text().length());
            assertEquals(a.documents().get(i).text(), b.documents().get(i).text());
        }
        assertTrue(!a.documents().get(0).text().equals(c.documents().get(0).text()));
        assertTrue(a.documents().get(0).text().startsWith("The "), a.documents().get(0).text());
    }

    @Test
    void syntheticCorpusHasLearnableStructure() {
        Corpus corpus = Corpus.synthetic(1, 20, 4000);
        double unigram = corpus.unigramEntropyNats(bytes);
        double bigram = corpus.conditionalBigramEntropyNats(bytes);
        assertTrue(unigram > 2.0 && unigram < Math.log(256), "unigram entropy " + unigram);
        // the previous byte alone removes more than half of the uncertainty
        assertTrue(bigram < 0.5 * unigram, "bigram " + bigram + " vs unigram " + unigram);
        assertTrue(bigram > 0, "bigram " + bigram);
    }

    @Test
    void entropyOfAKnownDistribution() {
        // "abab…" : uniform over 2 symbols, and fully determined by the previous one
        Corpus corpus = new Corpus("ab", List.of(new Corpus.Document("d", "ab".repeat(100))));
        assertEquals(Math.log(2), corpus.unigramEntropyNats(bytes), 1e-12);
        assertEquals(0.0, corpus.conditionalBigramEntropyNats(bytes), 1e-12);
    }

    @Test
    void jargonSplitKeepsTheTextAndCutsAtEntries() {
        StringBuilder text = new StringBuilder("Glossary\n\n");
        for (int i = 0; i < 200; i++) {
            text.append("   :word").append(i).append(": n.\n\n   Some explanation of word ").append(i)
                    .append(",\n   over two lines.\n\n");
        }
        List<Corpus.Document> documents = JargonFile.split(text.toString(), 1000);
        assertTrue(documents.size() > 5, "documents: " + documents.size());
        assertEquals(text.toString(), documents.stream().map(Corpus.Document::text).collect(Collectors.joining()));
        for (int i = 1; i < documents.size(); i++) {
            assertTrue(documents.get(i).text().startsWith("   :word"), documents.get(i).text());
            assertTrue(documents.get(i - 1).text().length() >= 1000);
        }
    }

    @Test
    void unavailableCorpusMessageSaysHowToPassAFile() {
        CorpusUnavailableException e = new CorpusUnavailableException("apt-get failed", null);
        assertTrue(e.getMessage().contains("--corpus FILE"), e.getMessage());
        assertTrue(e.getMessage().contains(".txt"), e.getMessage());
    }

    @Test
    void documentsAreUtf8Sized() {
        Corpus corpus = new Corpus("x", List.of(new Corpus.Document("d", "é")));
        assertEquals("é".getBytes(StandardCharsets.UTF_8).length, corpus.totalBytes());
        assertThrows(IllegalArgumentException.class, () -> new Corpus("none", List.of()));
    }
}
