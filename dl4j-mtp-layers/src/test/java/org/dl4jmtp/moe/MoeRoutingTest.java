package org.dl4jmtp.moe;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.block.NemotronV3Block;
import org.dl4jmtp.block.NemotronV3BlockLayer;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.DoublePrecisionSingleThread;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.RowMixer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One routing rule for the three MoE runtimes: on inputs where experts tie exactly on {@code score + bias}, the SameDiff
 * mixer ({@link MoeMixer}, dense under the top-k mask), the explicit one ({@link SparseMoe}) and the decoding step
 * ({@link CachedMoe}) pick the same experts (the lowest index of a tie) and give the same output; NaN scores throw.
 * The mixers run on the same parameters (one block layer's views) and the same rows, without the block's norm.
 */
@ExtendWith(DoublePrecisionSingleThread.class)
class MoeRoutingTest {

    private static final int H = 8;
    private static final int E = 4;
    private static final int N = 5;
    private static final String PREFIX = NemotronV3Block.MIXER_PREFIX;

    private static NemotronV3Config config(int k) {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(5);
        cfg.setHiddenSize(H);
        cfg.hybridOverridePattern("E");
        cfg.setNRoutedExperts(E);
        cfg.setNumExpertsPerTok(k);
        cfg.setNormTopkProb(true);
        cfg.setMoeIntermediateSize(6);
        cfg.setMoeSharedExpertIntermediateSize(5);
        cfg.setRoutedScalingFactor(2.5);
        cfg.validate();
        return cfg;
    }

    /** A graph holding one explicit MoE block: its parameter views serve all three mixers. */
    static ComputationGraph block(NemotronV3Config cfg, DataType type, long seed) {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().dataType(type).graphBuilder()
                .addInputs("in")
                .addLayer("block", new NemotronV3BlockLayer.Builder().config(cfg).blockType(BlockType.MOE)
                        .runtime(LayerRuntime.EXPLICIT).build(), "in")
                .setOutputs("block")
                .build();
        ComputationGraph graph = new ComputationGraph(conf);
        graph.init();
        Random r = new Random(seed);
        for (INDArray v : graph.getLayer("block").paramTable().values()) {
            for (long i = 0; i < v.length(); i++) {
                v.putScalar(i, 0.5 * r.nextGaussian());
            }
        }
        return graph;
    }

    static INDArray param(ComputationGraph graph, String key) {
        return graph.getLayer("block").paramTable().get(PREFIX + key);
    }

    private static INDArray rows(DataType type, long seed) {
        Random r = new Random(seed);
        INDArray x = Nd4j.create(type, N, H);
        for (long i = 0; i < x.length(); i++) {
            x.putScalar(i, r.nextGaussian());
        }
        return x;
    }

    /** The SameDiff mixer on rows x [n, H] (one sequence of n tokens). */
    static INDArray sameDiff(NemotronV3Config cfg, ComputationGraph graph, INDArray x) {
        SameDiff sd = SameDiff.create();
        Map<String, SDVariable> params = new HashMap<>();
        graph.getLayer("block").paramTable().forEach((key, value) -> params.put(key, sd.var(key, value.dup())));
        long n = x.size(0);
        long h = x.size(1);
        SDVariable in = sd.constant("x", x.reshape(1, n, h));
        return new MoeMixer(MoeConfig.of(cfg)).define(sd, in, params, PREFIX).eval().reshape(n, h);
    }

    private static SparseMoe.Forward explicitForward(NemotronV3Config cfg, ComputationGraph graph, INDArray x) {
        return sparse(cfg, graph).forward(x, 1, RowMixer.Cache.CURRENT_SCOPE).state;
    }

    private static SparseMoe sparse(NemotronV3Config cfg, ComputationGraph graph) {
        return new SparseMoe(MoeConfig.of(cfg), graph.getLayer("block").paramTable(), PREFIX);
    }

    private static INDArray explicit(NemotronV3Config cfg, ComputationGraph graph, INDArray x) {
        return sparse(cfg, graph).forward(x, 1, RowMixer.Cache.CURRENT_SCOPE).output;
    }

    private static INDArray cached(NemotronV3Config cfg, ComputationGraph graph, INDArray x) {
        return new CachedMoe(MoeConfig.of(cfg), ModelWeights.of(graph).under("block." + PREFIX)).forward(x, LayerState.NONE);
    }

    /** The cached step one token at a time (its n = 1 decode path), stacked. */
    private static INDArray cachedTokenByToken(NemotronV3Config cfg, ComputationGraph graph, INDArray x) {
        INDArray out = Nd4j.create(x.dataType(), N, H);
        for (int t = 0; t < N; t++) {
            out.putRow(t, cached(cfg, graph, x.getRows(t)));
        }
        return out;
    }

    private static double maxAbsDiff(INDArray a, INDArray b) {
        return a.sub(b).amaxNumber().doubleValue();
    }

    private static int[][] chosen(MoeRouting routing) {
        int[][] out = new int[routing.tokens][routing.k];
        for (int t = 0; t < routing.tokens; t++) {
            for (int s = 0; s < routing.k; s++) {
                out[t][s] = routing.chosenExpert(t, s);
            }
        }
        return out;
    }

    private static void assertAllRuntimesAgree(NemotronV3Config cfg, ComputationGraph graph, INDArray x, double tol) {
        INDArray expected = sameDiff(cfg, graph, x);
        assertTrue(maxAbsDiff(expected, explicit(cfg, graph, x)) <= tol, "explicit vs SameDiff");
        assertTrue(maxAbsDiff(expected, cached(cfg, graph, x)) <= tol, "cached (n rows) vs SameDiff");
        assertTrue(maxAbsDiff(expected, cachedTokenByToken(cfg, graph, x)) <= tol, "cached (one row) vs SameDiff");
    }

    /**
     * k = 2, gate rows of experts 1 and 2 equal and the same bias: their biased scores tie exactly on every token, at
     * the second place behind expert 0 (bias +10), expert 3 far behind (bias −10). Every token routes to {0, 1}.
     */
    @Test
    void exactTieAtTheKthPlaceGoesToTheLowerIndexInEveryRuntime() {
        NemotronV3Config cfg = config(2);
        ComputationGraph graph = block(cfg, DataType.DOUBLE, 1);
        INDArray gate = param(graph, MoeMixer.GATE);
        gate.getRow(2).assign(gate.getRow(1));
        param(graph, MoeMixer.CORRECTION_BIAS).assign(Nd4j.createFromArray(10.0, 0.3, 0.3, -10.0)
                .reshape(param(graph, MoeMixer.CORRECTION_BIAS).shape()));
        INDArray x = rows(DataType.DOUBLE, 2);

        int[][] expected = new int[N][];
        for (int t = 0; t < N; t++) {
            expected[t] = new int[]{0, 1};
        }
        assertArrayEquals(expected, chosen(explicitForward(cfg, graph, x).routing));
        assertAllRuntimesAgree(cfg, graph, x, 1e-10);

        // the tie decides the output: expert 2 (its own up/down weights) instead of expert 1 gives another one
        INDArray lowerWins = sameDiff(cfg, graph, x);
        param(graph, MoeMixer.CORRECTION_BIAS).putScalar(1, 0.2);
        assertTrue(maxAbsDiff(lowerWins, sameDiff(cfg, graph, x)) > 1e-3, "experts 1 and 2 must differ");
    }

    /**
     * Zero gate weights: every score is sigmoid(0) = 0.5 and the biases alone order the experts, with a three-way tie
     * (experts 1, 2, 3) and k = 3. Tokens route to {0, 1, 2} in this order, each weight 2.5/3.
     */
    @Test
    void zeroRouterTiesAllTokensAlike() {
        NemotronV3Config cfg = config(3);
        ComputationGraph graph = block(cfg, DataType.DOUBLE, 3);
        param(graph, MoeMixer.GATE).assign(0.0);
        param(graph, MoeMixer.CORRECTION_BIAS).assign(Nd4j.createFromArray(0.25, -0.125, -0.125, -0.125)
                .reshape(param(graph, MoeMixer.CORRECTION_BIAS).shape()));
        INDArray x = rows(DataType.DOUBLE, 4);

        MoeRouting routing = explicitForward(cfg, graph, x).routing;
        for (int t = 0; t < N; t++) {
            assertArrayEquals(new int[]{0, 1, 2}, chosen(routing)[t], "token " + t);
        }
        for (double w : routing.weightOfRow) {
            assertEquals(2.5 / 3, w, 1e-15);
        }
        assertAllRuntimesAgree(cfg, graph, x, 1e-10);
    }

    /**
     * Float network, zero gate weights (scores 0.5) and biases {1, 0, −1, 2⁻²⁵}: in float 0.5 + 2⁻²⁵ rounds to 0.5, so
     * experts 1 and 3 tie and expert 1 is chosen; a comparison in double would choose expert 3. The selection is made
     * in the network's type, as the graph adds score and bias.
     */
    @Test
    void floatNetworkTiesInFloat() {
        NemotronV3Config cfg = config(2);
        ComputationGraph graph = block(cfg, DataType.FLOAT, 5);
        param(graph, MoeMixer.GATE).assign(0.0);
        float tiny = (float) Math.scalb(1.0, -25);
        param(graph, MoeMixer.CORRECTION_BIAS).assign(Nd4j.createFromArray(1f, 0f, -1f, tiny)
                .reshape(param(graph, MoeMixer.CORRECTION_BIAS).shape()));
        INDArray x = rows(DataType.FLOAT, 6);

        MoeRouting routing = explicitForward(cfg, graph, x).routing;
        for (int t = 0; t < N; t++) {
            assertArrayEquals(new int[]{0, 1}, chosen(routing)[t], "token " + t);
        }
        assertAllRuntimesAgree(cfg, graph, x, 1e-5);
    }

    /**
     * Group-limited routing in a float network (2 groups of 2 experts, 1 group kept, top-1), zero gate weights so the
     * biases set the selection values: group 0 = {1, 1}, group 1 = {2, 2⁻²⁴}. In float 2 + 2⁻²⁴ rounds to 2, the
     * groups tie and group 0 (expert 0) is chosen; in double group 1 (expert 2) would win. The group sums are formed
     * in the network's type, as the graph forms them, so every runtime picks expert 0.
     */
    @Test
    void floatNetworkTiesGroupScoresInFloat() {
        NemotronV3Config cfg = config(1);
        cfg.setNGroup(2);
        cfg.setTopkGroup(1);
        cfg.validate();
        ComputationGraph graph = block(cfg, DataType.FLOAT, 11);
        param(graph, MoeMixer.GATE).assign(0.0);
        float tiny = (float) Math.scalb(1.0, -24);
        param(graph, MoeMixer.CORRECTION_BIAS).assign(Nd4j.createFromArray(0.5f, 0.5f, 1.5f, tiny - 0.5f)
                .reshape(param(graph, MoeMixer.CORRECTION_BIAS).shape()));
        INDArray x = rows(DataType.FLOAT, 12);

        MoeRouting routing = explicitForward(cfg, graph, x).routing;
        for (int t = 0; t < N; t++) {
            assertArrayEquals(new int[]{0}, chosen(routing)[t], "token " + t);
        }
        assertAllRuntimesAgree(cfg, graph, x, 1e-5);

        double[] scores = new double[N * E];
        double[] selection = new double[N * E];
        double[] bias = {0.5, 0.5, 1.5, tiny - 0.5};
        for (int i = 0; i < N * E; i++) {
            scores[i] = 0.5;
            selection[i] = 0.5 + bias[i % E];
        }
        MoeRouting inDouble = MoeRouting.route(scores, selection, N, MoeConfig.of(cfg), DataType.DOUBLE);
        assertEquals(2, inDouble.chosenExpert(0, 0), "summed in double, group 1 wins");
    }

    @Test
    void nanScoresThrowInTheExplicitAndTheCachedPath() {
        NemotronV3Config cfg = config(2);
        ComputationGraph graph = block(cfg, DataType.DOUBLE, 7);
        INDArray x = rows(DataType.DOUBLE, 8);
        x.putScalar(3, 2, Double.NaN);                                  // token 3's scores are NaN

        IllegalStateException sparseError = assertThrows(IllegalStateException.class, () -> explicit(cfg, graph, x));
        IllegalStateException cachedError = assertThrows(IllegalStateException.class, () -> cached(cfg, graph, x));
        IllegalStateException decodeError = assertThrows(IllegalStateException.class,
                () -> cached(cfg, graph, x.getRows(3)));
        for (IllegalStateException e : new IllegalStateException[]{sparseError, cachedError, decodeError}) {
            assertTrue(e.getMessage().startsWith("MoE router produced NaN scores"), e.getMessage());
        }
        assertTrue(sparseError.getMessage().contains("token 3"), sparseError.getMessage());
    }

    @Test
    void nanCorrectionBiasThrows() {
        NemotronV3Config cfg = config(1);
        ComputationGraph graph = block(cfg, DataType.DOUBLE, 9);
        param(graph, MoeMixer.CORRECTION_BIAS).putScalar(2, Double.NaN);
        INDArray x = rows(DataType.DOUBLE, 10);
        assertThrows(IllegalStateException.class, () -> explicit(cfg, graph, x));
        assertThrows(IllegalStateException.class, () -> cached(cfg, graph, x.getRows(0)));
    }
}
