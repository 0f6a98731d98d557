package org.dl4jmtp.generate;

import java.util.List;

/**
 * One generation.
 *
 * @param tokens       the new tokens (the prompt excluded)
 * @param elapsedNanos wall time, prefill included
 * @param stats        acceptance metrics of speculative decoding; null for the other modes
 * @param drafts       the k drafts of each verify step, in order (empty for the other modes)
 */
public record GenerationResult(int[] tokens, long elapsedNanos, SpeculativeStats stats, List<int[]> drafts) {

    public double tokensPerSecond() {
        return elapsedNanos == 0 ? 0.0 : tokens.length / (elapsedNanos / 1e9);
    }
}
