package org.dl4jmtp.generate;

import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * The reference: plain greedy decoding with {@link NemotronV3ForCausalLM#forward} over the whole sequence at every
 * step (no cache), reading the main logits at the last position.
 */
public final class FullRecomputeDecoder implements TokenDecoder {

    private final NemotronV3ForCausalLM model;

    public FullRecomputeDecoder(NemotronV3ForCausalLM model) {
        this.model = model;
    }

    @Override
    public GenerationResult generate(int[] prompt, int maxNewTokens, Set<Integer> stopTokenIds) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("The prompt must hold at least one token");
        }
        long start = System.nanoTime();
        EmittedTokens emitted = new EmittedTokens(maxNewTokens, stopTokenIds);
        int[] sequence = prompt.clone();
        while (!emitted.done()) {
            int next = nextToken(sequence);
            emitted.add(next);
            sequence = Arrays.copyOf(sequence, sequence.length + 1);
            sequence[sequence.length - 1] = next;
        }
        return new GenerationResult(emitted.toArray(), System.nanoTime() - start, null, List.of());
    }

    private int nextToken(int[] sequence) {
        INDArray ids = Nd4j.createFromArray(sequence).reshape(1, sequence.length);
        INDArray logits = model.forward(ids).mainLogits();
        return RowOps.argmax(logits.get(NDArrayIndex.point(0), NDArrayIndex.point(sequence.length - 1), NDArrayIndex.all()));
    }

    @Override
    public String name() {
        return "full_recompute";
    }
}
