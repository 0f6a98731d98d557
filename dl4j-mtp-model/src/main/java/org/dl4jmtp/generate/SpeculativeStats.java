package org.dl4jmtp.generate;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Acceptance metrics of MTP self-speculative decoding, in vLLM's vocabulary.
 *
 * @param numSpeculativeTokens k, drafts per verify step
 * @param verifySteps          verify forwards of the main model ("num_drafts")
 * @param draftedTokens        draft tokens proposed ("num_draft_tokens" = k · verifySteps)
 * @param acceptedTokens       draft tokens accepted ("num_accepted_tokens")
 * @param acceptedPerPosition  [k]: verify steps whose draft at position i (0-based) was accepted
 *                             ("num_accepted_tokens_per_pos")
 * @param emittedTokens        new tokens returned (after the max-tokens / stop cut)
 * @param elapsedNanos         wall time of the generation calls, prefill included
 */
public record SpeculativeStats(int numSpeculativeTokens, long verifySteps, long draftedTokens, long acceptedTokens,
                               long[] acceptedPerPosition, long emittedTokens, long elapsedNanos) {

    /** Mean acceptance length: tokens produced per verify step, 1 + accepted / verify steps (vLLM's definition). */
    public double meanAcceptanceLength() {
        return verifySteps == 0 ? 0.0 : 1.0 + (double) acceptedTokens / verifySteps;
    }

    /** Draft acceptance rate: accepted / drafted. */
    public double acceptanceRate() {
        return draftedTokens == 0 ? 0.0 : (double) acceptedTokens / draftedTokens;
    }

    /** Per-position acceptance rate: the fraction of verify steps whose draft i was accepted (i = 0..k−1). */
    public double[] perPositionAcceptanceRate() {
        double[] out = new double[acceptedPerPosition.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = verifySteps == 0 ? 0.0 : (double) acceptedPerPosition[i] / verifySteps;
        }
        return out;
    }

    public double tokensPerSecond() {
        return elapsedNanos == 0 ? 0.0 : emittedTokens / (elapsedNanos / 1e9);
    }

    /** The sum over several generations (same k). */
    public static SpeculativeStats combine(List<SpeculativeStats> parts) {
        if (parts.isEmpty()) {
            throw new IllegalArgumentException("Nothing to combine");
        }
        int k = parts.get(0).numSpeculativeTokens;
        long[] perPosition = new long[k];
        long verify = 0;
        long drafted = 0;
        long accepted = 0;
        long emitted = 0;
        long nanos = 0;
        for (SpeculativeStats s : parts) {
            if (s.numSpeculativeTokens != k) {
                throw new IllegalArgumentException("Cannot combine k = " + k + " with k = " + s.numSpeculativeTokens);
            }
            verify += s.verifySteps;
            drafted += s.draftedTokens;
            accepted += s.acceptedTokens;
            emitted += s.emittedTokens;
            nanos += s.elapsedNanos;
            for (int i = 0; i < k; i++) {
                perPosition[i] += s.acceptedPerPosition[i];
            }
        }
        return new SpeculativeStats(k, verify, drafted, accepted, perPosition, emitted, nanos);
    }

    /** The metrics as JSON-ready values (for the CLI). */
    public Map<String, Object> toJsonMap() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("num_speculative_tokens", numSpeculativeTokens);
        out.put("verify_steps", verifySteps);
        out.put("drafted_tokens", draftedTokens);
        out.put("accepted_tokens", acceptedTokens);
        out.put("mean_acceptance_length", meanAcceptanceLength());
        out.put("acceptance_rate", acceptanceRate());
        out.put("accepted_per_position", acceptedPerPosition.clone());
        out.put("per_position_acceptance_rate", perPositionAcceptanceRate());
        out.put("emitted_tokens", emittedTokens);
        out.put("tokens_per_second", tokensPerSecond());
        return out;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SpeculativeStats s && numSpeculativeTokens == s.numSpeculativeTokens
                && verifySteps == s.verifySteps && draftedTokens == s.draftedTokens && acceptedTokens == s.acceptedTokens
                && Arrays.equals(acceptedPerPosition, s.acceptedPerPosition) && emittedTokens == s.emittedTokens
                && elapsedNanos == s.elapsedNanos;
    }

    @Override
    public int hashCode() {
        return 31 * Long.hashCode(acceptedTokens) + Arrays.hashCode(acceptedPerPosition);
    }

    @Override
    public String toString() {
        return String.format("SpeculativeStats{k=%d, verifySteps=%d, drafted=%d, accepted=%d, meanAcceptanceLength=%.3f,"
                        + " perPosition=%s, emitted=%d, tokens/s=%.1f}", numSpeculativeTokens, verifySteps, draftedTokens,
                acceptedTokens, meanAcceptanceLength(), Arrays.toString(perPositionAcceptanceRate()), emittedTokens,
                tokensPerSecond());
    }
}
