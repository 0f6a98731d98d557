package org.dl4jmtp.generate;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The three decoding modes on one model and prompt set (what {@code bench-decode} prints as JSON).
 *
 * @param outputsIdentical whether the three modes produced the same tokens for every prompt
 */
public record DecodeBenchmarkResult(String dataType, int prompts, int maxNewTokens, int numSpeculativeTokens,
                                    ModeTiming fullRecompute, ModeTiming cachedGreedy, ModeTiming speculative,
                                    SpeculativeStats acceptance, boolean outputsIdentical) {

    /** Cached greedy tokens/s over full recompute tokens/s. */
    public double cachedSpeedupOverFullRecompute() {
        return ratio(cachedGreedy, fullRecompute);
    }

    /** Speculative tokens/s over cached greedy tokens/s. */
    public double speculativeSpeedupOverCached() {
        return ratio(speculative, cachedGreedy);
    }

    /** Speculative tokens/s over full recompute tokens/s. */
    public double speculativeSpeedupOverFullRecompute() {
        return ratio(speculative, fullRecompute);
    }

    private static double ratio(ModeTiming a, ModeTiming b) {
        return b.tokensPerSecond() == 0 ? 0.0 : a.tokensPerSecond() / b.tokensPerSecond();
    }

    /** JSON-ready values: settings, tokens/s per mode, speed-ups, acceptance metrics. */
    public Map<String, Object> toJsonMap() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("data_type", dataType);
        out.put("prompts", prompts);
        out.put("max_new_tokens", maxNewTokens);
        out.put("num_speculative_tokens", numSpeculativeTokens);
        out.put("full_recompute", fullRecompute.toJsonMap());
        out.put("cached_greedy", cachedGreedy.toJsonMap());
        out.put("speculative", speculative.toJsonMap());
        Map<String, Object> speedups = new LinkedHashMap<>();
        speedups.put("cached_over_full_recompute", cachedSpeedupOverFullRecompute());
        speedups.put("speculative_over_cached", speculativeSpeedupOverCached());
        speedups.put("speculative_over_full_recompute", speculativeSpeedupOverFullRecompute());
        out.put("speedup", speedups);
        out.put("acceptance", acceptance.toJsonMap());
        out.put("outputs_identical", outputsIdentical);
        return out;
    }
}
