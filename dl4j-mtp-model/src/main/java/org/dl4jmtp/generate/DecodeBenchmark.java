package org.dl4jmtp.generate;

import org.dl4jmtp.model.NemotronV3ForCausalLM;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Runs full recompute, cached greedy and speculative greedy (k drafts) on the same model and prompts, each after one
 * short warm-up generation, and reports tokens/s, speed-ups and the acceptance metrics.
 */
public final class DecodeBenchmark {

    private static final int WARMUP_TOKENS = 4;

    private DecodeBenchmark() {
    }

    /**
     * @param prompts              token-id prompts (each non-empty)
     * @param maxNewTokens         new tokens per prompt (no stop tokens, so every mode does the same work)
     * @param numSpeculativeTokens k for the speculative mode
     */
    public static DecodeBenchmarkResult run(NemotronV3ForCausalLM model, List<int[]> prompts, int maxNewTokens,
                                            int numSpeculativeTokens) {
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("The prompt set is empty");
        }
        CachedNemotronV3 cached = CachedNemotronV3.of(model);
        TokenDecoder full = new FullRecomputeDecoder(model);
        TokenDecoder greedy = new CachedGreedyDecoder(cached);
        SpeculativeDecoder speculative = new SpeculativeDecoder(cached, numSpeculativeTokens);

        List<int[]> fullTokens = new ArrayList<>();
        List<int[]> greedyTokens = new ArrayList<>();
        List<int[]> speculativeTokens = new ArrayList<>();
        List<SpeculativeStats> stats = new ArrayList<>();
        ModeTiming fullTiming = time(full, prompts, maxNewTokens, fullTokens, null);
        ModeTiming greedyTiming = time(greedy, prompts, maxNewTokens, greedyTokens, null);
        ModeTiming speculativeTiming = time(speculative, prompts, maxNewTokens, speculativeTokens, stats);

        boolean identical = true;
        for (int i = 0; i < prompts.size(); i++) {
            identical &= Arrays.equals(fullTokens.get(i), greedyTokens.get(i))
                    && Arrays.equals(greedyTokens.get(i), speculativeTokens.get(i));
        }
        return new DecodeBenchmarkResult(cached.dataType().name(), prompts.size(), maxNewTokens, numSpeculativeTokens,
                fullTiming, greedyTiming, speculativeTiming, SpeculativeStats.combine(stats), identical);
    }

    private static ModeTiming time(TokenDecoder decoder, List<int[]> prompts, int maxNewTokens, List<int[]> outputs,
                                   List<SpeculativeStats> stats) {
        decoder.generate(prompts.get(0), Math.min(maxNewTokens, WARMUP_TOKENS));
        long tokens = 0;
        long nanos = 0;
        for (int[] prompt : prompts) {
            GenerationResult result = decoder.generate(prompt, maxNewTokens);
            outputs.add(result.tokens());
            tokens += result.tokens().length;
            nanos += result.elapsedNanos();
            if (stats != null) {
                stats.add(result.stats());
            }
        }
        return new ModeTiming(decoder.name(), tokens, nanos);
    }
}
