package org.dl4jmtp.generate;

import org.dl4jmtp.layers.DecoderCache;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * Greedy MTP self-speculative decoding (docs/model.md, "Decoding"), token-for-token the output of plain greedy
 * decoding.
 *
 * <p>Each round, with the accepted sequence x[0..L−1] (x[L−1] chosen but not yet fed to the main model):
 * <ol>
 *   <li><b>Draft</b> k tokens: depth d at position L−2 consumes h^{d−1}_{L−2} and x[L−2+d] (the previous drafts
 *   for d ≥ 2) and proposes draft d = argmax of its logits. Depth d keeps its own cache over the positions whose
 *   input token is accepted; the positions that embed a draft are computed in the same step and rolled back
 *   afterwards. Depths beyond the model's physical depths reuse the last one (vLLM style).</li>
 *   <li><b>Verify</b> with one cached main-model step over the k+1 tokens [x[L−1], d_1..d_k].</li>
 *   <li><b>Accept</b> the longest prefix of drafts equal to the main model's greedy tokens, plus the bonus token (the
 *   main model's choice after that prefix); roll the main cache (KV rows, Mamba conv/SSM states) back to the
 *   accepted positions.</li>
 * </ol>
 */
public final class SpeculativeDecoder implements TokenDecoder {

    private final CachedNemotronV3 model;
    private final int k;

    /** @param numSpeculativeTokens k ≥ 1 drafts per verify step */
    public SpeculativeDecoder(CachedNemotronV3 model, int numSpeculativeTokens) {
        if (model.mtpDepths() == 0) {
            throw new IllegalArgumentException("Speculative decoding needs a model with MTP depths");
        }
        if (numSpeculativeTokens < 1) {
            throw new IllegalArgumentException("numSpeculativeTokens must be >= 1, got " + numSpeculativeTokens);
        }
        this.model = model;
        this.k = numSpeculativeTokens;
    }

    @Override
    public GenerationResult generate(int[] prompt, int maxNewTokens, Set<Integer> stopTokenIds) {
        long start = System.nanoTime();
        EmittedTokens emitted = new EmittedTokens(maxNewTokens, stopTokenIds);
        List<int[]> draftLog = new ArrayList<>();
        long[] acceptedPerPosition = new long[k];
        long accepted = 0;
        if (maxNewTokens > 0) {
            Session session = new Session(prompt);
            emitted.add(session.prefill());
            while (!emitted.done()) {
                int[] drafts = session.draft();
                int[] newTokens = session.verify(drafts);
                int acceptedDrafts = newTokens.length - 1;
                for (int i = 0; i < acceptedDrafts; i++) {
                    acceptedPerPosition[i]++;
                }
                accepted += acceptedDrafts;
                draftLog.add(drafts);
                for (int token : newTokens) {
                    emitted.add(token);
                }
            }
        }
        long elapsed = System.nanoTime() - start;
        long steps = draftLog.size();
        SpeculativeStats stats = new SpeculativeStats(k, steps, steps * k, accepted, acceptedPerPosition,
                emitted.size(), elapsed);
        return new GenerationResult(emitted.toArray(), elapsed, stats, draftLog);
    }

    @Override
    public String name() {
        return "speculative_k" + k;
    }

    /** The caches and accepted tokens of one generation. */
    private final class Session {

        private final DecoderCache main = model.newCache();
        private final DecoderCache[] depthCaches = new DecoderCache[k + 1];          // index d = 1..k
        private final HiddenHistory[] hidden = new HiddenHistory[k + 1];             // final h^d rows, d = 0..k
        private int[] tokens;
        private int length;

        Session(int[] prompt) {
            if (prompt.length == 0) {
                throw new IllegalArgumentException("The prompt must hold at least one token");
            }
            tokens = Arrays.copyOf(prompt, prompt.length + 64);
            length = prompt.length;
            for (int d = 0; d <= k; d++) {
                hidden[d] = new HiddenHistory();
                depthCaches[d] = d == 0 ? null : model.newMtpCache(d);
            }
        }

        /** Main model over the prompt; returns the first new token. */
        int prefill() {
            StepOutput out = model.step(Arrays.copyOf(tokens, length), main);
            hidden[0].append(0, out.hidden());
            int next = out.lastGreedyToken();
            append(next);
            return next;
        }

        /** k drafts for positions L .. L+k−1. */
        int[] draft() {
            int last = length - 2;                  // every depth drafts from position L−2
            int[] drafts = new int[k];
            INDArray speculativeRows = null;        // depth d−1's rows that embed a draft
            for (int d = 1; d <= k; d++) {
                DecoderCache cache = depthCaches[d];
                int from = cache.length();
                int finalEnd = Math.max(0, length - d);     // depth d's inputs are accepted tokens below this
                int[] inputTokens = new int[last - from + 1];
                for (int t = from; t <= last; t++) {
                    int i = t + d;
                    inputTokens[t - from] = i < length ? tokens[i] : drafts[i - length];
                }
                StepOutput out = model.mtpStep(d, previousHidden(d, from, last, speculativeRows), inputTokens, cache);
                drafts[d - 1] = out.lastGreedyToken();
                int finalRows = finalEnd - from;
                int rows = inputTokens.length;
                if (finalRows > 0 && d < k) {       // the last depth's output feeds no further depth
                    hidden[d].append(from, RowOps.rows(out.hidden(), 0, finalRows));
                }
                speculativeRows = finalRows < rows ? RowOps.rows(out.hidden(), finalRows, rows) : null;
                cache.truncate(finalEnd);
                hidden[d - 1].dropBefore(finalEnd);
            }
            return drafts;
        }

        /** h^{d−1} at positions from..last: final rows first, then depth d−1's speculative rows. */
        private INDArray previousHidden(int d, int from, int last, INDArray speculativeRows) {
            int speculativeStart = Math.max(0, length - d + 1);   // depth d−1's first position that embeds a draft
            int finalTo = Math.min(last + 1, speculativeStart);
            List<INDArray> parts = new ArrayList<>();
            if (finalTo > from) {
                parts.add(hidden[d - 1].rows(from, finalTo));
            }
            int specFrom = Math.max(from, speculativeStart);
            if (specFrom <= last) {
                parts.add(RowOps.rows(speculativeRows, specFrom - speculativeStart, last + 1 - speculativeStart));
            }
            return parts.size() == 1 ? parts.get(0) : Nd4j.vstack(parts.toArray(new INDArray[0]));
        }

        /** One main-model step over [x[L−1], drafts]; returns the accepted drafts plus the bonus token. */
        int[] verify(int[] drafts) {
            int[] chunk = new int[k + 1];
            chunk[0] = tokens[length - 1];
            System.arraycopy(drafts, 0, chunk, 1, k);
            StepOutput out = model.step(chunk, main);
            int[] greedy = out.greedyTokens();
            int accepted = 0;
            while (accepted < k && drafts[accepted] == greedy[accepted]) {
                accepted++;
            }
            main.truncate(length + accepted);
            hidden[0].append(length - 1, RowOps.rows(out.hidden(), 0, accepted + 1));
            int[] newTokens = Arrays.copyOf(drafts, accepted + 1);
            newTokens[accepted] = greedy[accepted];
            for (int token : newTokens) {
                append(token);
            }
            return newTokens;
        }

        private void append(int token) {
            if (length == tokens.length) {
                tokens = Arrays.copyOf(tokens, 2 * length);
            }
            tokens[length++] = token;
        }
    }
}
