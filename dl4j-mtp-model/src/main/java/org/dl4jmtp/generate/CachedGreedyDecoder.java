package org.dl4jmtp.generate;

import org.dl4jmtp.layers.DecoderCache;

import java.util.List;
import java.util.Set;

/**
 * Plain decoding on the cached path: prefill the prompt in one pass, then one token per step, each picked by a
 * {@link Sampler} (greedy by default).
 */
public final class CachedGreedyDecoder implements TokenDecoder {

    private final CachedNemotronV3 model;
    private final Sampler sampler;

    /** Greedy decoding. */
    public CachedGreedyDecoder(CachedNemotronV3 model) {
        this(model, Sampler.greedy());
    }

    /** Decoding with the tokens picked by the sampler. */
    public CachedGreedyDecoder(CachedNemotronV3 model, Sampler sampler) {
        this.model = model;
        this.sampler = sampler;
    }

    @Override
    public GenerationResult generate(int[] prompt, int maxNewTokens, Set<Integer> stopTokenIds) {
        long start = System.nanoTime();
        EmittedTokens emitted = new EmittedTokens(maxNewTokens, stopTokenIds);
        if (maxNewTokens > 0) {
            DecoderCache cache = model.newCache();
            int next = model.step(prompt, cache).lastToken(sampler);
            emitted.add(next);
            while (!emitted.done()) {
                next = model.step(new int[]{next}, cache).lastToken(sampler);
                emitted.add(next);
            }
        }
        return new GenerationResult(emitted.toArray(), System.nanoTime() - start, null, List.of());
    }

    /** {@code cached_greedy}, or {@code cached_sampled} with a sampling Sampler. */
    @Override
    public String name() {
        return sampler.isGreedy() ? "cached_greedy" : "cached_sampled";
    }
}
