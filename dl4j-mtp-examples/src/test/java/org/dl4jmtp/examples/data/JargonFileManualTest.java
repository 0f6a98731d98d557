package org.dl4jmtp.examples.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fetches the real Jargon File through apt. Manual (needs apt-get and a Debian mirror):
 * {@code mvn -o -q -B -pl dl4j-mtp-examples test -Dtest=JargonFileManualTest -Ddl4jmtp.jargon=true}
 */
@EnabledIfSystemProperty(named = "dl4jmtp.jargon", matches = "true")
class JargonFileManualTest {

    @Test
    void fetchesCachesAndSplitsTheJargonFile(@TempDir Path dataDir) throws Exception {
        long started = System.nanoTime();
        Corpus corpus = Corpus.jargonFile(dataDir);
        long fetchedMs = (System.nanoTime() - started) / 1_000_000;
        Path cached = dataDir.resolve("jargon.txt");
        assertTrue(Files.size(cached) > 1_000_000, "size " + Files.size(cached));
        try (var leftovers = Files.list(dataDir)) {
            assertEquals(1, leftovers.count(), "only jargon.txt should remain in the data folder");
        }
        String joined = corpus.documents().stream().map(Corpus.Document::text).collect(Collectors.joining());
        assertEquals(Corpus.readUtf8(cached), joined);
        assertTrue(joined.contains("The Story of Mel"));

        started = System.nanoTime();
        Corpus again = Corpus.jargonFile(dataDir);                  // from the cache
        long cachedMs = (System.nanoTime() - started) / 1_000_000;
        assertEquals(corpus.size(), again.size());

        ByteTokenizer bytes = new ByteTokenizer();
        TokenStream stream = corpus.encode(bytes);
        System.out.printf("Jargon File: %d bytes, %d chars, %d documents, %d tokens; unigram entropy %.4f nats/byte, "
                        + "bigram conditional %.4f; fetch %d ms, cached load %d ms%n",
                Files.size(cached), joined.length(), corpus.size(), stream.length(), stream.unigramEntropyNats(),
                stream.conditionalBigramEntropyNats(), fetchedMs, cachedMs);
    }
}
