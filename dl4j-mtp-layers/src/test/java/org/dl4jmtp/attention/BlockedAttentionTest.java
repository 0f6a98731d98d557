package org.dl4jmtp.attention;

import org.dl4jmtp.layers.DoublePrecisionSingleThread;
import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.RowMixer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.memory.conf.WorkspaceConfiguration;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The blocked (online-softmax) path of {@link CausalAttention} against its dense [T, T] path on the same parameters, in
 * double: output, input gradient and every parameter gradient within 1e-10. Block size 4, so T = 1, 3, 4, 5 and 10 are
 * one partial block, block − 1, one block, block + 1 and 2.5 blocks; MHA, GQA (4 query heads on 2 kv heads) and MQA.
 */
@ExtendWith(DoublePrecisionSingleThread.class)
class BlockedAttentionTest {

    private static final int BLOCK = 4;
    private static final int H = 8;
    private static final int BATCH = 2;
    private static final double TOLERANCE = 1e-10;
    private static final String PREFIX = "mixer.";

    private static AttentionConfig config(int heads, int kvHeads, int headDim, boolean bias) {
        AttentionConfig c = new AttentionConfig();
        c.setHiddenSize(H);
        c.setNumAttentionHeads(heads);
        c.setNumKeyValueHeads(kvHeads);
        c.setHeadDim(headDim);
        c.setAttentionBias(bias);
        return c;
    }

    /** O(1)-scale random parameters (large enough that the softmax is far from uniform). */
    private static Map<String, INDArray> params(AttentionConfig c, long seed) {
        Nd4j.getRandom().setSeed(seed);
        Map<String, INDArray> p = new LinkedHashMap<>();
        p.put(PREFIX + AttentionMixer.Q_PROJ, Nd4j.randn(DataType.DOUBLE, c.queryWidth(), H));
        p.put(PREFIX + AttentionMixer.K_PROJ, Nd4j.randn(DataType.DOUBLE, c.kvWidth(), H));
        p.put(PREFIX + AttentionMixer.V_PROJ, Nd4j.randn(DataType.DOUBLE, c.kvWidth(), H));
        p.put(PREFIX + AttentionMixer.O_PROJ, Nd4j.randn(DataType.DOUBLE, H, c.queryWidth()));
        if (c.isAttentionBias()) {
            p.put(PREFIX + AttentionMixer.Q_BIAS, Nd4j.randn(DataType.DOUBLE, 1, c.queryWidth()));
            p.put(PREFIX + AttentionMixer.K_BIAS, Nd4j.randn(DataType.DOUBLE, 1, c.kvWidth()));
            p.put(PREFIX + AttentionMixer.V_BIAS, Nd4j.randn(DataType.DOUBLE, 1, c.kvWidth()));
            p.put(PREFIX + AttentionMixer.O_BIAS, Nd4j.randn(DataType.DOUBLE, 1, H));
        }
        return p;
    }

    /** Output, input gradient and parameter gradients (keys as the parameters) of one forward + backward pass. */
    private static Map<String, INDArray> run(CausalAttention mixer, Map<String, INDArray> params, INDArray x,
                                             INDArray gradOut) {
        return run(mixer, params, x, gradOut, null);
    }

    private static Map<String, INDArray> run(CausalAttention mixer, Map<String, INDArray> params, INDArray x,
                                             INDArray gradOut, Documents documents) {
        return run(mixer, params, x, gradOut, documents, RowMixer.Cache.CURRENT_SCOPE);
    }

    /**
     * A training forward pass's memory, outside every workspace (as DL4J's activation workspace is outside the blocked
     * path's scratch one): the blocked path may keep its probabilities there for backprop.
     */
    private static final RowMixer.Cache TRAINING = new RowMixer.Cache() {
        @Override
        public INDArray createUninitialized(DataType dataType, long... shape) {
            try (MemoryWorkspace none = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
                return Nd4j.createUninitialized(dataType, shape, 'c');
            }
        }

        @Override
        public INDArray keep(INDArray array) {
            return array.detach();
        }
    };

    /** The blocked path that keeps its probabilities (no budget limit) when the cache allows it. */
    private static CausalAttention keeping(AttentionConfig c, Map<String, INDArray> params) {
        return new CausalAttention(c, params, PREFIX, BLOCK, 0, Long.MAX_VALUE);
    }

    private static Map<String, INDArray> run(CausalAttention mixer, Map<String, INDArray> params, INDArray x,
                                             INDArray gradOut, Documents documents, RowMixer.Cache cache) {
        RowMixer.Result<CausalAttention.Forward> r = mixer.forward(x, BATCH, documents, cache);
        assertEquals(cache == TRAINING, r.state.blocked != null && r.state.blocked.weights != null, "exponentials kept only for training");
        Map<String, INDArray> gradients = new LinkedHashMap<>();
        for (Map.Entry<String, INDArray> e : params.entrySet()) {
            gradients.put(e.getKey(), Nd4j.valueArrayOf(e.getValue().shape(), Double.NaN, DataType.DOUBLE));
        }
        INDArray gradInput = mixer.backward(r.state, gradOut, gradients);
        Map<String, INDArray> out = new LinkedHashMap<>();
        out.put("output", r.output.dup());
        out.put("input gradient", gradInput.dup());
        for (Map.Entry<String, INDArray> e : gradients.entrySet()) {
            out.put(e.getKey(), e.getValue().dup());
        }
        return out;
    }

    private static void assertSame(AttentionConfig c, int time, boolean inWorkspace) {
        assertSame(c, params(c, 7 + time), time, inWorkspace);
    }

    private static void assertSame(AttentionConfig c, Map<String, INDArray> params, int time, boolean inWorkspace) {
        INDArray x = Nd4j.randn(DataType.DOUBLE, (long) BATCH * time, H);
        INDArray gradOut = Nd4j.randn(DataType.DOUBLE, (long) BATCH * time, H);
        Map<String, INDArray> dense = run(new CausalAttention(c, params, PREFIX, BLOCK, Integer.MAX_VALUE, 0), params, x,
                gradOut);
        Map<String, INDArray> blocked;
        if (inWorkspace) {
            // as in training: the caller's workspace is open around the blocked path's own scratch workspaces
            try (MemoryWorkspace ws = Nd4j.getWorkspaceManager().getAndActivateWorkspace(
                    WorkspaceConfiguration.builder().initialSize(1 << 20).build(), "BlockedAttentionTest")) {
                blocked = run(new CausalAttention(c, params, PREFIX, BLOCK, 0, 0), params, x, gradOut);
                blocked.replaceAll((key, array) -> array.detach());
            }
        } else {
            blocked = run(new CausalAttention(c, params, PREFIX, BLOCK, 0, 0), params, x, gradOut);
        }
        assertClose(dense, blocked, "T = " + time + ", recomputed");
        Map<String, INDArray> kept = run(keeping(c, params), params, x, gradOut, null, TRAINING);
        assertClose(dense, kept, "T = " + time + ", kept");
    }

    private static void assertClose(Map<String, INDArray> dense, Map<String, INDArray> blocked, String what) {
        assertEquals(dense.keySet(), blocked.keySet());
        for (String key : dense.keySet()) {
            INDArray expected = dense.get(key);
            INDArray actual = blocked.get(key);
            assertEquals(0, expected.isNaN().castTo(DataType.INT).sumNumber().intValue(), key + " written (dense)");
            double diff = expected.sub(actual).amaxNumber().doubleValue();
            assertTrue(diff <= TOLERANCE, key + " at " + what + ": max |dense − blocked| = " + diff);
        }
    }

    @ParameterizedTest(name = "nq={0}, nkv={1}, T={2}")
    @CsvSource({
            "2, 2, 1", "2, 2, 3", "2, 2, 4", "2, 2, 5", "2, 2, 10",
            "4, 2, 1", "4, 2, 3", "4, 2, 4", "4, 2, 5", "4, 2, 10",
            "4, 1, 1", "4, 1, 3", "4, 1, 4", "4, 1, 5", "4, 1, 10"})
    void blockedEqualsDense(int heads, int kvHeads, int time) {
        assertSame(config(heads, kvHeads, 3, true), time, false);
    }

    @Test
    void withoutBiasInsideAWorkspace() {
        assertSame(config(4, 2, 3, false), 10, true);
        assertSame(config(4, 1, 2, false), 9, true);
    }

    /**
     * Both shifts of the scores before exp: the Cauchy–Schwarz bound |q|·max|k| (small projections) and, where that
     * bound exceeds the limit, each row's maximum (large projections: scores of ±30 and more).
     */
    @ParameterizedTest(name = "projection scale {0}")
    @CsvSource({"0.3, true", "4, false"})
    void boundedAndExactShifts(double projectionScale, boolean bounded) {
        AttentionConfig c = config(4, 2, 3, true);
        Map<String, INDArray> params = params(c, 11);
        params.get(PREFIX + AttentionMixer.Q_PROJ).muli(projectionScale);
        params.get(PREFIX + AttentionMixer.K_PROJ).muli(projectionScale);
        INDArray x = Nd4j.randn(DataType.DOUBLE, (long) BATCH * 10, H);
        RowMixer.Result<CausalAttention.Forward> r = new CausalAttention(c, params, PREFIX, BLOCK, 0, 0)
                .forward(x, BATCH, RowMixer.Cache.CURRENT_SCOPE);
        assertEquals(bounded, r.state.blocked.boundedShifts, "which shift");
        assertSame(c, params, 10, false);
    }

    /**
     * Packed documents over several blocks (T = 10, blocks of 4): row 0 splits at 4, row 1 at 3 and 8, so the tile of
     * queries 8–9 and keys 0–3 holds no pair of one document in either row and is skipped; the others are masked.
     */
    @Test
    void packedDocumentsSkipAndMaskTiles() {
        int time = 10;
        Documents documents = Documents.of(Nd4j.createFromArray(new double[][]{
                {0, 0, 0, 0, 1, 1, 1, 1, 1, 1},
                {0, 0, 0, 1, 1, 1, 1, 1, 2, 2}}), BATCH, time, DataType.DOUBLE);
        assertTrue(documents.disjoint(8, 4), "the tile (queries 8-9, keys 0-3) is skipped");
        assertFalse(documents.disjoint(4, 4), "row 1 has queries 4-7 and key 3 in one document");
        for (AttentionConfig c : new AttentionConfig[]{config(4, 2, 3, true), config(4, 1, 2, false)}) {
            Map<String, INDArray> params = params(c, 3);
            INDArray x = Nd4j.randn(DataType.DOUBLE, (long) BATCH * time, H);
            INDArray gradOut = Nd4j.randn(DataType.DOUBLE, (long) BATCH * time, H);
            Map<String, INDArray> dense = run(new CausalAttention(c, params, PREFIX, BLOCK, Integer.MAX_VALUE, 0), params,
                    x, gradOut, documents);
            Map<String, INDArray> blocked = run(new CausalAttention(c, params, PREFIX, BLOCK, 0, 0), params, x, gradOut,
                    documents);
            Map<String, INDArray> unisolated = run(new CausalAttention(c, params, PREFIX, BLOCK, 0, 0), params, x, gradOut);
            assertClose(dense, blocked, "packed documents, recomputed");
            assertClose(dense, run(keeping(c, params), params, x, gradOut, documents, TRAINING),
                    "packed documents, kept");
            assertTrue(dense.get("output").sub(unisolated.get("output")).amaxNumber().doubleValue() > 1e-3,
                    "the documents change the output");
        }
    }

    /** The comparison can fail: a block size that mis-tiles (no mask on a tile) would differ — here, another model. */
    @Test
    void comparisonDetectsADifference() {
        AttentionConfig c = config(4, 2, 3, true);
        Map<String, INDArray> params = params(c, 1);
        Map<String, INDArray> other = params(c, 1);
        other.get(PREFIX + AttentionMixer.K_PROJ).addi(1e-6);
        INDArray x = Nd4j.randn(DataType.DOUBLE, (long) BATCH * 10, H);
        INDArray gradOut = Nd4j.randn(DataType.DOUBLE, (long) BATCH * 10, H);
        INDArray a = run(new CausalAttention(c, params, PREFIX, BLOCK, 0, 0), params, x, gradOut).get("output");
        INDArray b = run(new CausalAttention(c, other, PREFIX, BLOCK, 0, 0), other, x, gradOut).get("output");
        assertTrue(a.sub(b).amaxNumber().doubleValue() > TOLERANCE);
    }
}
