package org.dl4jmtp.moe;

import org.dl4jmtp.layers.CachedMixer;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.ArrayList;
import java.util.List;

/**
 * Mixture of experts (docs/model.md, "MoE"), sparse: sigmoid router, top-k on the biased scores (first index on ties,
 * as the
 * graph's repeated argmax), weights from the unbiased scores normalised when {@code norm_topk_prob} and times
 * {@code routed_scaling_factor}; only the chosen experts run, each on the rows routed to it. Optional LatentMoE
 * projections, plus the shared expert on the full input. No state.
 */
public final class CachedMoe implements CachedMixer {

    /** Added to the sum of the selected weights before normalising, as HF and the graph do. */
    private static final double NORM_EPS = 1e-20;

    private final MoeConfig config;
    private final ModelWeights weights;

    public CachedMoe(MoeConfig config, ModelWeights weights) {
        this.config = config;
        this.weights = weights;
    }

    @Override
    public LayerState newState() {
        return LayerState.NONE;
    }

    @Override
    public INDArray forward(INDArray normed, LayerState state) {
        int n = (int) normed.size(0);
        int experts = config.getNRoutedExperts();
        double[] scores = RowOps.values(Transforms.sigmoid(RowOps.linear(normed, weights.get("gate.weight"), null),
                false));                                                                         // [n, E] row-major
        List<List<double[]>> routing = route(scores, RowOps.values(weights.get("gate.e_score_correction_bias")), n,
                normed.dataType() == DataType.FLOAT);

        INDArray expertInput = config.hasLatentMoe()
                ? RowOps.linear(normed, weights.get("fc1_latent_proj.weight"), null) : normed;
        INDArray routed = Nd4j.zeros(normed.dataType(), n, expertInput.size(1));
        for (int e = 0; e < experts; e++) {
            if (!routing.get(e).isEmpty()) {
                routed.addi(expert(e, expertInput, routing.get(e), n));
            }
        }
        if (config.hasLatentMoe()) {
            routed = RowOps.linear(routed, weights.get("fc2_latent_proj.weight"), null);
        }
        INDArray shared = RowOps.linear(RowOps.relu2(RowOps.linear(normed, weights.get("shared_experts.up_proj.weight"),
                null)), weights.get("shared_experts.down_proj.weight"), null);
        return routed.addi(shared);
    }

    /**
     * Top-k routing of n rows: {@code routing[e]} lists the rows {r, weight} sent to expert e, in row order.
     *
     * @param scores [n, E] row-major unbiased sigmoid scores
     * @param single true for a float graph: score + bias is rounded to float, as the graph adds them
     */
    private List<List<double[]>> route(double[] scores, double[] bias, int n, boolean single) {
        int experts = config.getNRoutedExperts();
        List<List<double[]>> routing = new ArrayList<>();
        for (int e = 0; e < experts; e++) {
            routing.add(new ArrayList<>());
        }
        for (int r = 0; r < n; r++) {
            double[] selection = new double[experts];
            for (int e = 0; e < experts; e++) {
                double biased = scores[r * experts + e] + bias[e];
                selection[e] = single ? (float) biased : biased;
            }
            int[] chosen = topK(selection, config.getNumExpertsPerTok());
            double sum = 0;
            for (int e : chosen) {
                sum += scores[r * experts + e];
            }
            for (int e : chosen) {
                double weight = scores[r * experts + e];
                weight = config.isNormTopkProb() ? weight / (sum + NORM_EPS) : weight;
                routing.get(e).add(new double[]{r, weight * config.getRoutedScalingFactor()});
            }
        }
        return routing;
    }

    /** Expert e on its rows, weighted and scattered back to [n, d_e] (zero rows elsewhere). */
    private INDArray expert(int e, INDArray input, List<double[]> rowsAndWeights, int n) {
        int m = rowsAndWeights.size();
        if (n == 1) {                                                   // decode: one row, one weight
            return relu2Expert(e, input).muli(rowsAndWeights.get(0)[1]);
        }
        int[] rows = new int[m];
        INDArray scatter = Nd4j.zeros(input.dataType(), n, m);                                  // [n, m] weights
        for (int i = 0; i < m; i++) {
            rows[i] = (int) rowsAndWeights.get(i)[0];
            scatter.putScalar(rows[i], i, rowsAndWeights.get(i)[1]);
        }
        return scatter.mmul(relu2Expert(e, m == n ? input : input.getRows(rows)));
    }

    private INDArray relu2Expert(int e, INDArray rows) {
        INDArray up = RowOps.linear(rows, weights.get("experts." + e + ".up_proj.weight"), null);
        return RowOps.linear(RowOps.relu2(up), weights.get("experts." + e + ".down_proj.weight"), null);
    }

    /** Indices of the k largest entries, each round taking the first maximum among those left. */
    public static int[] topK(double[] values, int k) {
        boolean[] taken = new boolean[values.length];
        int[] out = new int[k];
        for (int round = 0; round < k; round++) {
            int best = -1;
            for (int i = 0; i < values.length; i++) {
                if (!taken[i] && (best < 0 || values[i] > values[best])) {
                    best = i;
                }
            }
            taken[best] = true;
            out[round] = best;
        }
        return out;
    }
}
