package org.dl4jmtp.generate;

import java.util.Set;

/** Text generation from a prompt of token ids. */
public interface TokenDecoder {

    /**
     * @param prompt        token ids (at least one)
     * @param maxNewTokens  at most this many new tokens
     * @param stopTokenIds  generation ends after emitting one of these (it is included); may be empty
     */
    GenerationResult generate(int[] prompt, int maxNewTokens, Set<Integer> stopTokenIds);

    /** Exactly {@code maxNewTokens} new tokens (no stop tokens). */
    default GenerationResult generate(int[] prompt, int maxNewTokens) {
        return generate(prompt, maxNewTokens, Set.of());
    }

    /** Short name of the mode ({@code full_recompute}, {@code cached_greedy}, {@code speculative_k2}, ...). */
    String name();
}
