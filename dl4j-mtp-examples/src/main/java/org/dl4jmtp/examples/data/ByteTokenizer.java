package org.dl4jmtp.examples.data;

import java.nio.charset.StandardCharsets;

/**
 * The default tokenizer: one token per UTF-8 byte, vocabulary 256, no files needed. Decoding replaces byte sequences
 * that are not valid UTF-8 (e.g. a sampled multi-byte character cut short) with U+FFFD.
 */
public final class ByteTokenizer implements Tokenizer {

    /** Number of byte values. */
    public static final int VOCAB_SIZE = 256;

    @Override
    public int vocabSize() {
        return VOCAB_SIZE;
    }

    @Override
    public int[] encode(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            ids[i] = bytes[i] & 0xFF;
        }
        return ids;
    }

    /**
     * @throws IllegalArgumentException if an id is outside {@code [0, 256)}
     */
    @Override
    public String decode(int[] ids) {
        byte[] bytes = new byte[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= VOCAB_SIZE) {
                throw new IllegalArgumentException("Byte token id out of range [0, 256): " + ids[i] + " at " + i);
            }
            bytes[i] = (byte) ids[i];
        }
        // The String constructor substitutes U+FFFD for malformed input; it never throws.
        return new String(bytes, StandardCharsets.UTF_8);
    }

    @Override
    public String name() {
        return "byte";
    }

    @Override
    public String toString() {
        return "ByteTokenizer(vocab=256)";
    }
}
