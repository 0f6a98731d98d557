package org.dl4jmtp.examples.data;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class ByteTokenizerTest {

    private final ByteTokenizer tokenizer = new ByteTokenizer();

    @Test
    void roundTripsAsciiAndNonAscii() {
        String text = "Hello, hacker! Grüße — 日本語 🙂\n\ttab";
        int[] ids = tokenizer.encode(text);
        assertEquals(text.getBytes(java.nio.charset.StandardCharsets.UTF_8).length, ids.length);
        for (int id : ids) {
            assertEquals(id, id & 0xFF);
        }
        assertEquals(text, tokenizer.decode(ids));
        assertEquals(256, tokenizer.vocabSize());
        assertEquals("byte", tokenizer.name());
    }

    @Test
    void encodesBytesAsUnsigned() {
        assertArrayEquals(new int[]{0x41, 0xC3, 0xA9}, tokenizer.encode("Aé"));
    }

    @Test
    void decodesInvalidUtf8WithReplacement() {
        // "é" cut after its first byte, then 'A'; a lone continuation byte
        assertEquals("\uFFFDA", tokenizer.decode(new int[]{0xC3, 0x41}));
        assertEquals("\uFFFD", tokenizer.decode(new int[]{0x80}));
    }

    @Test
    void rejectsIdsOutsideTheVocabulary() {
        assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[]{256}));
        assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[]{-1}));
    }
}
