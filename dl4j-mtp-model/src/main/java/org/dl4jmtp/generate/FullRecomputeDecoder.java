package org.dl4jmtp.generate;

import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * The reference: decoding with {@link NemotronV3ForCausalLM#forward} over the whole sequence at every step (no cache),
 * picking each token from the main logits at the last position with a {@link Sampler} (greedy by default).
 *
 * <p>{@link #generateWithDrafts} also records the greedy draft of every MTP depth at every step, by the reference
 * definition: at a step with the sequence {@code seq} (length n) and the picked token g, the draft of depth d is the
 * argmax of {@code mtpLogits[d-1]} at position n-1 of a forward over {@code seq ++ [g] ++ drafts[0:d-1]}. The forward
 * made for depth 1 is the next step's forward, so it is reused.
 */
public final class FullRecomputeDecoder implements TokenDecoder {

    private final NemotronV3ForCausalLM model;
    private final Sampler sampler;

    /** Greedy decoding. */
    public FullRecomputeDecoder(NemotronV3ForCausalLM model) {
        this(model, Sampler.greedy());
    }

    /** Decoding with the tokens picked by the sampler. */
    public FullRecomputeDecoder(NemotronV3ForCausalLM model, Sampler sampler) {
        this.model = model;
        this.sampler = sampler;
    }

    @Override
    public GenerationResult generate(int[] prompt, int maxNewTokens, Set<Integer> stopTokenIds) {
        return decode(prompt, maxNewTokens, stopTokenIds, 0);
    }

    /**
     * As {@link #generate(int[], int, Set)}, with {@link GenerationResult#drafts()} holding, for every step, the draft
     * of each MTP depth (d = 1..D) for the tokens after the picked one.
     */
    public GenerationResult generateWithDrafts(int[] prompt, int maxNewTokens, Set<Integer> stopTokenIds) {
        int depths = model.mtp().enabled() ? model.mtp().getNumLayers() : 0;
        if (depths == 0) {
            throw new IllegalArgumentException("Drafts need a model with MTP depths");
        }
        return decode(prompt, maxNewTokens, stopTokenIds, depths);
    }

    private GenerationResult decode(int[] prompt, int maxNewTokens, Set<Integer> stopTokenIds, int draftDepths) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("The prompt must hold at least one token");
        }
        long start = System.nanoTime();
        EmittedTokens emitted = new EmittedTokens(maxNewTokens, stopTokenIds);
        List<int[]> drafts = new ArrayList<>();
        int[] sequence = prompt.clone();
        NemotronV3ForCausalLM.ForwardResult current = emitted.done() ? null : forward(sequence);
        while (!emitted.done()) {
            int n = sequence.length;
            int token = sampler.next(at(current.mainLogits(), n - 1));
            sequence = append(sequence, token);
            NemotronV3ForCausalLM.ForwardResult next = null;
            if (draftDepths > 0) {
                int[] stepDrafts = new int[draftDepths];
                int[] extended = sequence;
                for (int d = 1; d <= draftDepths; d++) {
                    NemotronV3ForCausalLM.ForwardResult r = forward(extended);   // length n + d
                    if (d == 1) {
                        next = r;                   // the forward over seq ++ [g]: the next step's
                    }
                    stepDrafts[d - 1] = Sampler.greedy().next(at(r.mtpLogits().get(d - 1), n - 1));
                    extended = append(extended, stepDrafts[d - 1]);
                }
                drafts.add(stepDrafts);
            }
            emitted.add(token);
            if (!emitted.done()) {
                current = next != null ? next : forward(sequence);
            }
        }
        return new GenerationResult(emitted.toArray(), System.nanoTime() - start, null, drafts);
    }

    private NemotronV3ForCausalLM.ForwardResult forward(int[] sequence) {
        return model.forward(Nd4j.createFromArray(sequence).reshape(1, sequence.length));
    }

    /** The logits [V] at position t of logits [1, T, V]. */
    private static INDArray at(INDArray logits, int t) {
        return logits.get(NDArrayIndex.point(0), NDArrayIndex.point(t), NDArrayIndex.all());
    }

    private static int[] append(int[] sequence, int token) {
        int[] out = Arrays.copyOf(sequence, sequence.length + 1);
        out[sequence.length] = token;
        return out;
    }

    @Override
    public String name() {
        return "full_recompute";
    }
}
