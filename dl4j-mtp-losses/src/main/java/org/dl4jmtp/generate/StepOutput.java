package org.dl4jmtp.generate;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What one cached step returns for its n new tokens.
 *
 * @param logits [n, V] from the shared lm_head
 * @param hidden [n, H]: the main model's output after norm_f, or an MTP depth's output after final_layernorm (the
 *               hidden state the next MTP depth consumes)
 */
public record StepOutput(INDArray logits, INDArray hidden) {

    /** Greedy token of each of the n rows. */
    public int[] greedyTokens() {
        return RowOps.argmaxRows(logits);
    }

    /** Greedy token of the last row. */
    public int lastGreedyToken() {
        int[] all = greedyTokens();
        return all[all.length - 1];
    }
}
