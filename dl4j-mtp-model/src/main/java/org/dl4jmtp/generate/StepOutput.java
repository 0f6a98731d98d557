package org.dl4jmtp.generate;

import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What one cached step returns for its n new tokens.
 *
 * @param logits [n, V] from the shared lm_head
 * @param hidden [n, H]: the main model's output after norm_f, or an MTP depth's output after final_layernorm (the
 *               hidden state the next MTP depth consumes)
 */
public record StepOutput(INDArray logits, INDArray hidden) {

    /** The token the sampler picks at each of the n rows, in order. */
    public int[] tokens(Sampler sampler) {
        int[] out = new int[(int) logits.size(0)];
        for (int r = 0; r < out.length; r++) {
            out[r] = sampler.next(RowOps.rows(logits, r, r + 1));
        }
        return out;
    }

    /** The token the sampler picks at the last row. */
    public int lastToken(Sampler sampler) {
        long n = logits.size(0);
        return sampler.next(RowOps.rows(logits, n - 1, n));
    }

    /** Greedy token of each of the n rows. */
    public int[] greedyTokens() {
        return tokens(Sampler.greedy());
    }

    /** Greedy token of the last row. */
    public int lastGreedyToken() {
        return lastToken(Sampler.greedy());
    }
}
