package org.dl4jmtp.examples.data;

/**
 * Text ↔ token ids. Ids are in {@code [0, vocabSize())}.
 */
public interface Tokenizer {

    /** Number of distinct token ids; every id produced by {@link #encode} is below it. */
    int vocabSize();

    /** The token ids of {@code text}. */
    int[] encode(String text);

    /** The text of {@code ids}; never throws on sequences that do not form valid text (it substitutes instead). */
    String decode(int[] ids);

    /** A short name for logs and metadata, e.g. {@code "byte"}. */
    String name();
}
