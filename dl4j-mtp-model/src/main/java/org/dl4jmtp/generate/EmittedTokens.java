package org.dl4jmtp.generate;

import java.util.Arrays;
import java.util.Set;

/** The new tokens of one generation, with its two limits: a maximum count and stop tokens. */
final class EmittedTokens {

    private final int maxNewTokens;
    private final Set<Integer> stopTokenIds;
    private int[] tokens = new int[16];
    private int size;
    private boolean stopped;

    EmittedTokens(int maxNewTokens, Set<Integer> stopTokenIds) {
        if (maxNewTokens < 0) {
            throw new IllegalArgumentException("maxNewTokens must be >= 0, got " + maxNewTokens);
        }
        this.maxNewTokens = maxNewTokens;
        this.stopTokenIds = stopTokenIds;
    }

    /** Adds a token unless generation is already done. */
    void add(int token) {
        if (done()) {
            return;
        }
        if (size == tokens.length) {
            tokens = Arrays.copyOf(tokens, 2 * size);
        }
        tokens[size++] = token;
        stopped = stopTokenIds.contains(token);
    }

    boolean done() {
        return stopped || size >= maxNewTokens;
    }

    int size() {
        return size;
    }

    int[] toArray() {
        return Arrays.copyOf(tokens, size);
    }
}
