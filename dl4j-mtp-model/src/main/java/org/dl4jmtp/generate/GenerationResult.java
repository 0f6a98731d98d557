package org.dl4jmtp.generate;

import java.util.List;

/**
 * One generation.
 *
 * @param tokens       the new tokens (the prompt excluded)
 * @param elapsedNanos wall time, prefill included
 * @param stats        acceptance metrics of speculative decoding; null for the other modes
 * @param drafts       the k drafts of each verify step of speculative decoding, or the draft of each MTP depth at
 *                     each step of {@link FullRecomputeDecoder#generateWithDrafts}, in order; empty otherwise
 */
public record GenerationResult(int[] tokens, long elapsedNanos, SpeculativeStats stats, List<int[]> drafts) {

    /** New tokens per second of wall time. */
    public double tokensPerSecond() {
        return elapsedNanos == 0 ? 0.0 : tokens.length / (elapsedNanos / 1e9);
    }
}
