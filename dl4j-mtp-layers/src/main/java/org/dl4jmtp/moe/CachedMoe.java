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

        INDArray expertInput = config.hasLatentMoe()
                ? RowOps.linear(normed, weights.get("fc1_latent_proj.weight"), null) : normed;
        INDArray routed = Nd4j.zeros(normed.dataType(), n, expertInput.size(1));
        for (int e = 0; e < experts; e++) {
            if (routing.count(e) > 0) {
                routed.addi(expert(e, expertInput, routing, n));
            }
        }
        if (config.hasLatentMoe()) {
            routed = RowOps.linear(routed, weights.get("fc2_latent_proj.weight"), null);
        }
        INDArray shared = RowOps.linear(RowOps.relu2(RowOps.linear(normed, weights.get("shared_experts.up_proj.weight"),
                null)), weights.get("shared_experts.down_proj.weight"), null);
        return routed.addi(shared);
    }

    /** Expert e on its dispatch rows, weighted and scattered back to [n, d_e] (zero rows elsewhere). */
    private INDArray expert(int e, INDArray input, MoeRouting routing, int n) {
        int first = routing.expertStart[e];
        int m = routing.count(e);
        if (n == 1) {                                                   // decode: one row, one weight
            return relu2Expert(e, input).muli(routing.weightOfRow[first]);
        }
        int[] rows = new int[m];
        INDArray scatter = Nd4j.zeros(input.dataType(), n, m);                                  // [n, m] weights
        for (int i = 0; i < m; i++) {
            rows[i] = routing.tokenOfRow[first + i];
            scatter.putScalar(rows[i], i, routing.weightOfRow[first + i]);
        }
        return scatter.mmul(relu2Expert(e, m == n ? input : input.getRows(rows)));
    }

    private INDArray relu2Expert(int e, INDArray rows) {
        INDArray up = RowOps.linear(rows, weights.get("experts." + e + ".up_proj.weight"), null);
        return RowOps.linear(RowOps.relu2(up), weights.get("experts." + e + ".down_proj.weight"), null);
    }
}
