package org.dl4jmtp.generate;

import org.dl4jmtp.layers.DecoderCache;
import org.dl4jmtp.layers.rows.RowOps;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.dl4jmtp.generate.GenerateTestSupport.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cached path equals the graph's full forward ({@code model.forward}) at every position, for the main head and,
 * teacher forced, for every MTP depth: depth d at position t gets h^{d−1}_t and x[t+d] (the token id 0 past the end,
 * as the graph's roll fills it), compared with {@code forward().mtpLogits()} at all T positions. Each sequence is
 * fed three ways: in one pass, token by token, and in uneven pieces (a cached prefix followed by a block).
 */
class CachedParityTest {

    private static final double DOUBLE_TOL = 1e-8;
    private static final double FLOAT_TOL = 1e-4;

    @Test
    void fixtureDoubleMatchesFullForwardEverywhere() throws Exception {
        checkParity(GenerateTestSupport.fixtureModel(DataType.DOUBLE), GenerateTestSupport.fixtureInputIds(), DOUBLE_TOL);
    }

    @Test
    void fixtureFloatMatchesFullForwardEverywhere() throws Exception {
        checkParity(GenerateTestSupport.fixtureModel(DataType.FLOAT), GenerateTestSupport.fixtureInputIds(), FLOAT_TOL);
    }

    /** All four block types, MTP *E with D = 2, T = 11 (not a multiple of chunk_size 4). */
    @Test
    void randomHybridMatchesFullForwardEverywhere() {
        NemotronV3ForCausalLM model = GenerateTestSupport.randomHybrid(false, false, 7);
        checkParity(model, randomIds(model, 2, 11, 70), DOUBLE_TOL);
    }

    /** Repeated (weight-tied) MTP layer, LatentMoE and projection biases; T = 75 spans several scan blocks. */
    @Test
    void randomHybridWithRepeatedMtpAndLatentMoeMatches() {
        NemotronV3ForCausalLM model = GenerateTestSupport.randomHybrid(true, true, 11);
        checkParity(model, randomIds(model, 1, 10, 71), DOUBLE_TOL);
        INDArray longIds = randomIds(model, 1, 75, 72);
        NemotronV3ForCausalLM.ForwardResult full = model.forward(longIds);
        CachedNemotronV3 cached = CachedNemotronV3.of(model);
        StepOutput out = cached.step(GenerateTestSupport.row(longIds, 0), cached.newCache());
        assertTrue(maxAbsDiff(out.logits(), full.mainLogits().slice(0)) <= DOUBLE_TOL, "T = 75 in one pass");
    }

    /** Group-limited routing (6 experts in 3 groups, 2 kept) in the backbone MoE and the MTP depth's SameDiff MoE. */
    @Test
    void groupLimitedRoutingMatchesFullForward() {
        NemotronV3Config config = GenerateTestSupport.hybridConfig(false);
        config.setNRoutedExperts(6);
        config.setNGroup(3);
        config.setTopkGroup(2);
        config.validate();
        NemotronV3ForCausalLM model = GenerateTestSupport.randomHybrid(config, false, 13);
        checkParity(model, randomIds(model, 2, 11, 73), DOUBLE_TOL);
    }

    /** Rolling back a step restores the KV cache and the Mamba conv/SSM states exactly. */
    @Test
    void rollbackRestoresEveryLayerState() {
        NemotronV3ForCausalLM model = GenerateTestSupport.randomHybrid(false, false, 13);
        int[] x = GenerateTestSupport.row(randomIds(model, 1, 16, 73), 0);
        CachedNemotronV3 cached = CachedNemotronV3.of(model);

        DecoderCache cache = cached.newCache();
        cached.step(Arrays.copyOfRange(x, 0, 8), cache);
        cached.step(new int[]{1, 2, 3, 4, 5}, cache);          // to be rejected after its first two tokens
        cache.truncate(10);
        assertThrows(IllegalStateException.class, () -> cache.truncate(7), "before the last step");
        int[] kept = {x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], 1, 2};
        StepOutput continued = cached.step(Arrays.copyOfRange(x, 10, 16), cache);

        int[] whole = new int[16];
        System.arraycopy(kept, 0, whole, 0, 10);
        System.arraycopy(x, 10, whole, 10, 6);
        StepOutput fresh = cached.step(whole, cached.newCache());
        assertEquals(0.0, maxAbsDiff(continued.logits(), RowOps.rows(fresh.logits(), 10, 16)), DOUBLE_TOL);
    }

    /** The cached path reads the graph's parameter views: changing the graph changes it (no stale copy). */
    @Test
    void cachedPathFollowsParameterUpdates() throws Exception {
        NemotronV3ForCausalLM model = GenerateTestSupport.fixtureModel(DataType.DOUBLE);
        CachedNemotronV3 cached = CachedNemotronV3.of(model);
        int[] x = GenerateTestSupport.row(GenerateTestSupport.fixtureInputIds(), 0);
        StepOutput before = cached.step(x, cached.newCache());
        model.graph().params().muli(0.97);
        StepOutput after = cached.step(x, cached.newCache());
        INDArray full = model.forward(Nd4j.createFromArray(x).reshape(1, x.length)).mainLogits().slice(0);
        assertTrue(maxAbsDiff(before.logits(), after.logits()) > 1e-3, "the update is visible");
        assertTrue(maxAbsDiff(after.logits(), full) <= DOUBLE_TOL, "and matches the updated graph");
    }

    /** @return the largest |cached − full| over every logit and hidden value compared */
    static double checkParity(NemotronV3ForCausalLM model, INDArray ids, double tol) {
        NemotronV3ForCausalLM.ForwardResult full = model.forward(ids);
        double worst = 0;
        CachedNemotronV3 cached = CachedNemotronV3.of(model);
        int depths = cached.mtpDepths();
        assertEquals(full.mtpLogits().size(), depths);
        for (int b = 0; b < ids.size(0); b++) {
            int[] x = GenerateTestSupport.row(ids, b);
            for (int[] pieces : piecings(x.length)) {
                String how = " (row " + b + ", pieces " + Arrays.toString(pieces) + ")";
                StepOutput main = run(pieces, x, null, (tokens, hidden, cache) -> cached.step(tokens, cache),
                        cached.newCache());
                worst = Math.max(worst, assertClose(full.mainLogits(), b, main.logits(), tol, "main logits" + how));
                worst = Math.max(worst, assertClose(full.hiddenFinal(), b, main.hidden(), tol, "hidden after norm_f" + how));
                INDArray previous = main.hidden();
                for (int d = 1; d <= depths; d++) {
                    int depth = d;
                    StepOutput mtp = run(pieces, rolled(x, d), previous,
                            (tokens, hidden, cache) -> cached.mtpStep(depth, hidden, tokens, cache), cached.newMtpCache(d));
                    worst = Math.max(worst, assertClose(full.mtpLogits().get(d - 1), b, mtp.logits(), tol,
                            "MTP depth " + d + " logits" + how));
                    worst = Math.max(worst, assertClose(full.mtpHidden().get(d - 1), b, mtp.hidden(), tol,
                            "MTP depth " + d + " hidden" + how));
                    previous = mtp.hidden();
                }
            }
        }
        System.out.printf("parity %s, %d depths, T = %d: max |cached - full| = %.3g (tolerance %.0e)%n",
                model.graph().getConfiguration().getDataType(), depths, ids.size(1), worst, tol);
        return worst;
    }

    private interface Stepper {
        StepOutput step(int[] tokens, INDArray hidden, DecoderCache cache);
    }

    /** Feeds x in consecutive pieces through one cache; returns the stacked outputs. */
    private static StepOutput run(int[] pieces, int[] x, INDArray hidden, Stepper stepper, DecoderCache cache) {
        List<INDArray> logits = new ArrayList<>();
        List<INDArray> hiddens = new ArrayList<>();
        int from = 0;
        for (int size : pieces) {
            int[] tokens = Arrays.copyOfRange(x, from, from + size);
            StepOutput out = stepper.step(tokens, hidden == null ? null : RowOps.rows(hidden, from, from + size), cache);
            logits.add(out.logits());
            hiddens.add(out.hidden());
            from += size;
        }
        assertEquals(x.length, cache.length());
        return new StepOutput(Nd4j.vstack(logits.toArray(new INDArray[0])), Nd4j.vstack(hiddens.toArray(new INDArray[0])));
    }

    /** One pass; token by token; a 3-token prefix, one token, then the rest as one block. */
    private static List<int[]> piecings(int t) {
        int[] ones = new int[t];
        Arrays.fill(ones, 1);
        return List.of(new int[]{t}, ones, new int[]{3, 1, t - 4});
    }

    /** The ids depth d embeds: x[t+d], 0 past the end (the graph's cumulative roll). */
    private static int[] rolled(int[] x, int d) {
        int[] out = new int[x.length];
        for (int t = 0; t + d < x.length; t++) {
            out[t] = x[t + d];
        }
        return out;
    }

    private static double assertClose(INDArray fullBatch, int b, INDArray cached, double tol, String what) {
        INDArray expected = fullBatch.get(NDArrayIndex.point(b), NDArrayIndex.all(), NDArrayIndex.all());
        double err = maxAbsDiff(cached, expected);
        assertTrue(err <= tol, what + ": max |cached - full| = " + err + " > " + tol);
        return err;
    }

    private static INDArray randomIds(NemotronV3ForCausalLM model, int rows, int t, long seed) {
        java.util.Random random = new java.util.Random(seed);
        long[][] ids = new long[rows][t];
        for (long[] row : ids) {
            for (int i = 0; i < t; i++) {
                row[i] = random.nextInt(model.config().getVocabSize());
            }
        }
        return Nd4j.createFromArray(ids);
    }
}
