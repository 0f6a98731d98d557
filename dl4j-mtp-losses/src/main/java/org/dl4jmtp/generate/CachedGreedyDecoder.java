package org.dl4jmtp.generate;

import java.util.List;
import java.util.Set;

/** Plain greedy decoding on the cached path: prefill the prompt in one pass, then one token per step. */
public final class CachedGreedyDecoder implements TokenDecoder {

    private final CachedNemotronV3 model;

    public CachedGreedyDecoder(CachedNemotronV3 model) {
        this.model = model;
    }

    @Override
    public GenerationResult generate(int[] prompt, int maxNewTokens, Set<Integer> stopTokenIds) {
        long start = System.nanoTime();
        EmittedTokens emitted = new EmittedTokens(maxNewTokens, stopTokenIds);
        if (maxNewTokens > 0) {
            DecoderCache cache = model.newCache();
            int next = model.step(prompt, cache).lastGreedyToken();
            emitted.add(next);
            while (!emitted.done()) {
                next = model.step(new int[]{next}, cache).lastGreedyToken();
                emitted.add(next);
            }
        }
        return new GenerationResult(emitted.toArray(), System.nanoTime() - start, null, List.of());
    }

    @Override
    public String name() {
        return "cached_greedy";
    }
}
