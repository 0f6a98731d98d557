package org.dl4jmtp.moe;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.block.NemotronV3Block;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.DoublePrecisionSingleThread;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.RowMixer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.dl4jmtp.moe.MoeRoutingTest.block;
import static org.dl4jmtp.moe.MoeRoutingTest.param;
import static org.dl4jmtp.moe.MoeRoutingTest.sameDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Group-limited routing ({@code n_group}, {@code topk_group}) against an independent reference: the expected experts
 * and weights in {@code moe-group-routing/expected.json} come from {@code reference.py} beside it (HF NemotronH's
 * router semantics in torch float64). Each case feeds its router logits directly (H = E, identity gate) to
 * {@link MoeRouting} and to a MoE block's three runtimes (SameDiff {@link MoeMixer}, explicit {@link SparseMoe},
 * decoding {@link CachedMoe}), whose outputs must equal the expert mixture the reference routing defines.
 */
@ExtendWith(DoublePrecisionSingleThread.class)
class GroupLimitedRoutingTest {

    private static final int E = 8;
    private static final String PREFIX = NemotronV3Block.MIXER_PREFIX;
    private static final double TOL = 1e-12;

    private static List<JsonNode> cases() throws Exception {
        try (InputStream in = GroupLimitedRoutingTest.class.getResourceAsStream("/moe-group-routing/expected.json")) {
            JsonNode root = new ObjectMapper().readTree(in);
            List<JsonNode> out = new ArrayList<>();
            root.get("cases").forEach(out::add);
            assertEquals(3, out.size());
            return out;
        }
    }

    private static NemotronV3Config config(JsonNode c) {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(5);
        cfg.setHiddenSize(E);
        cfg.hybridOverridePattern("E");
        cfg.setNRoutedExperts(E);
        cfg.setNumExpertsPerTok(c.get("k").asInt());
        cfg.setNGroup(c.get("n_group").asInt());
        cfg.setTopkGroup(c.get("topk_group").asInt());
        cfg.setNormTopkProb(c.get("norm_topk_prob").asBoolean());
        cfg.setRoutedScalingFactor(c.get("routed_scaling_factor").asDouble());
        cfg.setMoeIntermediateSize(6);
        cfg.setMoeSharedExpertIntermediateSize(5);
        cfg.validate();
        return cfg;
    }

    private static double[][] matrix(JsonNode rows) {
        double[][] out = new double[rows.size()][];
        for (int i = 0; i < rows.size(); i++) {
            out[i] = new double[rows.get(i).size()];
            for (int j = 0; j < out[i].length; j++) {
                out[i][j] = rows.get(i).get(j).asDouble();
            }
        }
        return out;
    }

    private static double[] vector(JsonNode values) {
        double[] out = new double[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i).asDouble();
        }
        return out;
    }

    private static int[][] experts(JsonNode rows) {
        return Arrays.stream(matrix(rows)).map(r -> Arrays.stream(r).mapToInt(v -> (int) v).toArray())
                .toArray(int[][]::new);
    }

    /** Each token's chosen experts in ascending order (the reference's order), with their weights. */
    private static void assertRouting(int[][] expected, double[][] expectedWeights, MoeRouting routing, String what) {
        for (int t = 0; t < routing.tokens; t++) {
            int[] chosen = new int[routing.k];
            double[] weights = new double[E];
            for (int s = 0; s < routing.k; s++) {
                chosen[s] = routing.chosenExpert(t, s);
                weights[chosen[s]] = routing.weightOfRow[routing.rowOfChoice[s][t]];
            }
            Arrays.sort(chosen);
            assertArrayEquals(expected[t], chosen, what + ", token " + t);
            for (int s = 0; s < routing.k; s++) {
                assertEquals(expectedWeights[t][s], weights[expected[t][s]], TOL,
                        what + ", token " + t + " weight " + s);
            }
        }
    }

    @Test
    void hostRoutingMatchesTheReference() throws Exception {
        boolean someCaseNeedsMinusInfinity = false;
        for (JsonNode c : cases()) {
            String name = c.get("name").asText();
            double[][] logits = matrix(c.get("logits"));
            double[] bias = vector(c.get("bias"));
            int n = logits.length;
            double[] scores = new double[n * E];
            double[] selection = new double[n * E];
            for (int t = 0; t < n; t++) {
                for (int e = 0; e < E; e++) {
                    scores[t * E + e] = 1 / (1 + Math.exp(-logits[t][e]));
                    selection[t * E + e] = scores[t * E + e] + bias[e];
                }
            }
            MoeConfig moe = MoeConfig.of(config(c));
            assertTrue(moe.isGroupLimited(), name);
            int[][] expected = experts(c.get("expected_experts"));
            assertRouting(expected, matrix(c.get("expected_weights")),
                    MoeRouting.route(scores, selection, n, moe, DataType.DOUBLE), name);

            // the case matters: plain top-k (the reference's too) chooses other experts for some token
            MoeRouting plain = MoeRouting.route(scores, selection, n, E, moe.getNumExpertsPerTok(),
                    moe.isNormTopkProb(), moe.getRoutedScalingFactor());
            int[][] plainChosen = new int[n][];
            for (int t = 0; t < n; t++) {
                plainChosen[t] = new int[moe.getNumExpertsPerTok()];
                for (int s = 0; s < plainChosen[t].length; s++) {
                    plainChosen[t][s] = plain.chosenExpert(t, s);
                }
                Arrays.sort(plainChosen[t]);
            }
            assertArrayEquals(experts(c.get("plain_topk_experts")), plainChosen, name + " (plain top-k)");
            assertFalse(Arrays.deepEquals(expected, plainChosen), name + ": group limiting must change a choice");
            someCaseNeedsMinusInfinity |= c.get("zero_fill_picks_excluded_expert").asBoolean();
        }
        assertTrue(someCaseNeedsMinusInfinity, "a case where a 0.0 fill would pick an excluded expert");
    }

    @Test
    void everyRuntimeComputesTheReferenceMixture() throws Exception {
        long seed = 40;
        for (JsonNode c : cases()) {
            String name = c.get("name").asText();
            NemotronV3Config cfg = config(c);
            ComputationGraph graph = block(cfg, DataType.DOUBLE, seed++);
            param(graph, MoeMixer.GATE).assign(Nd4j.eye(E));
            double[] bias = vector(c.get("bias"));
            INDArray biasParam = param(graph, MoeMixer.CORRECTION_BIAS);
            biasParam.assign(Nd4j.createFromArray(bias).reshape(biasParam.shape()));
            INDArray x = Nd4j.createFromArray(matrix(c.get("logits")));          // identity gate: logits = rows
            int n = (int) x.size(0);

            INDArray expected = referenceMixture(graph, x, experts(c.get("expected_experts")),
                    matrix(c.get("expected_weights")));
            MoeConfig moe = MoeConfig.of(cfg);
            RowMixer.Result<SparseMoe.Forward> sparse = new SparseMoe(moe, graph.getLayer("block").paramTable(), PREFIX)
                    .forward(x, 1, RowMixer.Cache.CURRENT_SCOPE);
            assertRouting(experts(c.get("expected_experts")), matrix(c.get("expected_weights")),
                    sparse.state.routing, name + " (explicit)");
            assertClose(expected, sparse.output, name + " (explicit)");
            assertClose(expected, sameDiff(cfg, graph, x), name + " (SameDiff)");
            CachedMoe cached = new CachedMoe(moe, ModelWeights.of(graph).under("block." + PREFIX));
            assertClose(expected, cached.forward(x, LayerState.NONE), name + " (cached, all rows)");
            for (int t = 0; t < n; t++) {
                assertClose(expected.getRow(t, true), cached.forward(x.getRows(t), LayerState.NONE),
                        name + " (cached, token " + t + ")");
            }
        }
    }

    /** Σ over the reference's choices of weight · down_e(relu(up_e x)²), plus the shared expert. */
    private static INDArray referenceMixture(ComputationGraph graph, INDArray x, int[][] experts, double[][] weights) {
        INDArray out = relu2Mlp(x, param(graph, MoeMixer.SHARED_UP), param(graph, MoeMixer.SHARED_DOWN));
        for (int t = 0; t < experts.length; t++) {
            INDArray row = x.getRow(t, true);
            for (int s = 0; s < experts[t].length; s++) {
                int e = experts[t][s];
                out.getRow(t, true).addi(relu2Mlp(row, param(graph, MoeMixer.expertUp(e)),
                        param(graph, MoeMixer.expertDown(e))).muli(weights[t][s]));
            }
        }
        return out;
    }

    private static INDArray relu2Mlp(INDArray rows, INDArray up, INDArray down) {
        INDArray hidden = Transforms.relu(rows.mmul(up.transpose()), true);
        return hidden.muli(hidden).mmul(down.transpose());
    }

    private static void assertClose(INDArray expected, INDArray actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what);
        double diff = expected.sub(actual).amaxNumber().doubleValue();
        assertTrue(diff <= TOL, what + ": max |diff| = " + diff);
    }
}
