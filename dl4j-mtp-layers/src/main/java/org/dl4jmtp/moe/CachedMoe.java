package org.dl4jmtp.moe;

import org.dl4jmtp.layers.CachedMixer;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Mixture of experts (docs/model.md, "MoE"), sparse: sigmoid router and top-k routing by {@link MoeRouting} (the same
 * selection, tie and NaN rules and weights as the explicit runtime and the SameDiff graph); only the chosen experts
 * run, each on the rows routed to it. Optional LatentMoE projections, plus the shared expert on the full input. No
 * state.
 */
public final class CachedMoe implements CachedMixer {

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
        INDArray scores = Transforms.sigmoid(RowOps.linear(normed, weights.get("gate.weight"), null), false); // [n, E]
        INDArray selection = MoeRouting.selectionValues(scores, weights.vector("gate.e_score_correction_bias"));
        MoeRouting routing = MoeRouting.route(RowOps.values(scores), RowOps.values(selection), n, config,
                scores.dataType());

        // the shared expert first: every routed expert then adds its weighted output into it (gemm with beta = 1)
        INDArray out = RowOps.linear(RowOps.relu2(RowOps.linear(normed, weights.get("shared_experts.up_proj.weight"),
                null)), weights.get("shared_experts.down_proj.weight"), null);
        INDArray expertInput = config.hasLatentMoe()
                ? RowOps.linear(normed, weights.get("fc1_latent_proj.weight"), null) : normed;
        INDArray routed = config.hasLatentMoe() ? Nd4j.zeros(normed.dataType(), n, expertInput.size(1)) : out;
        for (int e = 0; e < experts; e++) {
            if (routing.count(e) > 0) {
                addExpert(e, expertInput, routing, n, routed);
            }
        }
        if (config.hasLatentMoe()) {
            Nd4j.gemm(routed, weights.get("fc2_latent_proj.weight"), out, false, true, 1.0, 1.0);
        }
        return out;
    }

    /** Adds expert e's output on its dispatch rows, weighted, to those rows of {@code sum} [n, d_e]. */
    private void addExpert(int e, INDArray input, MoeRouting routing, int n, INDArray sum) {
        int first = routing.expertStart[e];
        int m = routing.count(e);
        INDArray down = weights.get("experts." + e + ".down_proj.weight");
        if (n == 1) {                                                   // decode: one row, one weight
            Nd4j.gemm(upRelu2(e, input), down, sum, false, true, routing.weightOfRow[first], 1.0);
            return;
        }
        int[] rows = new int[m];
        double[] scatter = new double[n * m];                                                   // [n, m] weights
        for (int i = 0; i < m; i++) {
            rows[i] = routing.tokenOfRow[first + i];
            scatter[rows[i] * m + i] = routing.weightOfRow[first + i];
        }
        INDArray outputs = RowOps.linear(upRelu2(e, m == n ? input : input.getRows(rows)), down, null);
        Nd4j.gemm(Nd4j.createFromArray(scatter).castTo(input.dataType()).reshape(n, m), outputs, sum, false, false,
                1.0, 1.0);
    }

    /** relu²(rows·W_upᵀ) of expert e. */
    private INDArray upRelu2(int e, INDArray rows) {
        return RowOps.relu2(RowOps.linear(rows, weights.get("experts." + e + ".up_proj.weight"), null));
    }
}
