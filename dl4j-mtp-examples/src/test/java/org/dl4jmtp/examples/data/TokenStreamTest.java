package org.dl4jmtp.examples.data;

import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TokenStreamTest {

    private final ByteTokenizer bytes = new ByteTokenizer();

    @Test
    void encodesDocumentsInOrderWithTheirIds() {
        Corpus corpus = new Corpus("c", List.of(new Corpus.Document("a", "ab"), new Corpus.Document("b", "é")));
        TokenStream stream = corpus.encode(bytes);
        assertArrayEquals(new int[]{'a', 'b', 0xC3, 0xA9}, stream.tokens());
        assertArrayEquals(new int[]{0, 0, 1, 1}, stream.documentIds());
        assertArrayEquals(new int[]{0, 1, 2, 3}, stream.positions());
        assertEquals(2, stream.documentCount());
        assertEquals(256, stream.vocabSize());
    }

    @Test
    void splitTakesTheTailOfEveryDocumentWithoutOverlap() {
        Corpus corpus = Corpus.synthetic(3, 7, 1000);
        TokenStream all = corpus.encode(bytes);
        TokenStream.Split split = all.split(0.1);
        TokenStream train = split.train();
        TokenStream validation = split.validation();

        assertEquals(all.length(), train.length() + validation.length());
        assertEquals(700, validation.length());                    // 10% of each 1000-byte document
        assertEquals(7, train.documentCount());
        assertEquals(7, validation.documentCount());

        Set<Integer> trainPositions = new HashSet<>();
        for (int i = 0; i < train.length(); i++) {
            trainPositions.add(train.position(i));
            assertEquals(all.token(train.position(i)), train.token(i));
            assertEquals(all.documentId(train.position(i)), train.documentId(i));
        }
        for (int i = 0; i < validation.length(); i++) {
            int p = validation.position(i);
            assertTrue(!trainPositions.contains(p), "position " + p + " is in both");
            assertEquals(all.token(p), validation.token(i));
            assertEquals(all.documentId(p), validation.documentId(i));
            // the tail of its document: byte offset in the document >= 900
            assertTrue(p % 1000 >= 900, "position " + p);
        }
    }

    @Test
    void splitFractionIsRoundedPerDocument() {
        TokenStream stream = new TokenStream(new int[10], new int[]{0, 0, 0, 1, 1, 1, 1, 1, 1, 1}, 256);
        TokenStream.Split split = stream.split(0.25);               // 3·0.25 → 1, 7·0.25 → 2
        assertArrayEquals(new int[]{2, 8, 9}, split.validation().positions());
        assertArrayEquals(new int[]{0, 1, 1}, split.validation().documentIds());
        assertEquals(0, stream.split(0.0).validation().length());
        assertThrows(IllegalArgumentException.class, () -> stream.split(1.0));
        assertThrows(IllegalArgumentException.class, () -> stream.split(-0.1));
    }

    @Test
    void rejectsTokensOutsideTheVocabulary() {
        assertThrows(IllegalArgumentException.class, () -> new TokenStream(new int[]{256}, new int[]{0}, 256));
        assertThrows(IllegalArgumentException.class, () -> new TokenStream(new int[]{1}, new int[]{0, 0}, 256));
    }

    @Test
    void bigramEntropyCountsOnlyPairsInsideADocument() {
        // pairs inside documents: (1,2) (2,1) (1,2) | (1,3); the boundary pair (2,1) is left out
        TokenStream stream = new TokenStream(new int[]{1, 2, 1, 2, 1, 3}, new int[]{0, 0, 0, 0, 1, 1}, 4);
        double expected = -(2.0 / 4 * Math.log(2.0 / 3) + 1.0 / 4 * Math.log(1.0 / 3));
        assertEquals(expected, stream.conditionalBigramEntropyNats(), 1e-12);
    }
}
