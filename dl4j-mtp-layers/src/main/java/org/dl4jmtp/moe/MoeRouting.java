package org.dl4jmtp.moe;

/**
 * The routing of one MoE forward pass, computed on the host (E is small, n·E values): each token's top-k experts on
 * {@code score + correction bias}, their weights from the unbiased scores (docs/model.md, "MoE"), and the dispatch plan
 * that
 * sorts the n·k (token, expert) assignments by expert so that each expert's tokens are one contiguous block of rows.
 *
 * <p>Selection matches the SameDiff MoE ({@code M21Workarounds.topKMask}): k rounds of argmax, the lowest index
 * winning a tie. Within an expert's block, tokens keep their order.
 */
public final class MoeRouting {

    /** Added to the sum of the selected weights before normalising, as HF does. */
    public static final double NORM_EPS = 1e-20;

    public final int tokens;
    public final int experts;
    public final int k;
    private final double[] scores;
    private final int[] chosenExpert;
    private final double[] normalizer;
    private final boolean normalize;
    private final double scale;

    /** Rows of expert e in dispatch order: {@code expertStart[e]} to {@code expertStart[e + 1] - 1}. */
    public final int[] expertStart;
    /** [n·k] the token of each dispatch row. */
    public final int[] tokenOfRow;
    /** [k][n] the dispatch row of token t's s-th choice. */
    public final int[][] rowOfChoice;
    /** [n·k] the routing weight of each dispatch row. */
    public final double[] weightOfRow;

    private MoeRouting(double[] scores, int tokens, int experts, int k, boolean normalize, double scale) {
        this.scores = scores;
        this.tokens = tokens;
        this.experts = experts;
        this.k = k;
        this.normalize = normalize;
        this.scale = scale;
        this.chosenExpert = new int[tokens * k];
        this.normalizer = new double[tokens];
        this.expertStart = new int[experts + 1];
        this.tokenOfRow = new int[tokens * k];
        this.rowOfChoice = new int[k][tokens];
        this.weightOfRow = new double[tokens * k];
    }

    /**
     * @param scores         [n·E] sigmoid router scores, row-major
     * @param correctionBias [E] {@code e_score_correction_bias}, used for the selection only
     */
    public static MoeRouting route(double[] scores, double[] correctionBias, int tokens, int experts, int k,
                            boolean normalize, double scale) {
        MoeRouting r = new MoeRouting(scores, tokens, experts, k, normalize, scale);
        r.select(correctionBias);
        r.dispatch();
        return r;
    }

    private void select(double[] correctionBias) {
        int[] count = new int[experts];
        for (int t = 0; t < tokens; t++) {
            int base = t * experts;
            double selectedSum = 0;
            for (int s = 0; s < k; s++) {
                int best = -1;
                double bestValue = Double.NEGATIVE_INFINITY;
                for (int e = 0; e < experts; e++) {
                    double v = scores[base + e] + correctionBias[e];
                    if (v > bestValue && !alreadyChosen(t, s, e)) {
                        best = e;
                        bestValue = v;
                    }
                }
                if (best < 0) {
                    throw new IllegalStateException("MoE router score of token " + t + " is not finite (NaN or "
                            + "-Infinity): the layer input or the router weights hold NaN/Inf");
                }
                chosenExpert[t * k + s] = best;
                count[best]++;
                selectedSum += scores[base + best];
            }
            normalizer[t] = normalize ? selectedSum + NORM_EPS : 1.0;
        }
        for (int e = 0; e < experts; e++) {
            expertStart[e + 1] = expertStart[e] + count[e];
        }
    }

    private boolean alreadyChosen(int token, int slots, int expert) {
        for (int s = 0; s < slots; s++) {
            if (chosenExpert[token * k + s] == expert) {
                return true;
            }
        }
        return false;
    }

    private void dispatch() {
        int[] next = expertStart.clone();
        for (int t = 0; t < tokens; t++) {
            for (int s = 0; s < k; s++) {
                int e = chosenExpert[t * k + s];
                int row = next[e]++;
                tokenOfRow[row] = t;
                rowOfChoice[s][t] = row;
                weightOfRow[row] = scale * scores[t * experts + e] / normalizer[t];
            }
        }
    }

    /** Number of tokens routed to expert {@code e}. */
    public int count(int e) {
        return expertStart[e + 1] - expertStart[e];
    }

    /**
     * Backprop through the weights and the sigmoid: from dL/d(weight of each dispatch row) to dL/d(router logits).
     *
     * @param weightGradient [n·k] dL/dw per dispatch row
     * @return [n·E] dL/dlogit, zero for unselected experts (the selection itself is constant)
     */
    public double[] logitGradient(double[] weightGradient) {
        double[] out = new double[tokens * experts];
        for (int t = 0; t < tokens; t++) {
            double denominator = normalizer[t];
            // normalised: w_s = c·p_s / D with D = Σ p + eps, so dp_j = c·(dw_j / D − Σ_s dw_s·p_s / D²)
            double correction = 0;
            if (normalize) {
                for (int s = 0; s < k; s++) {
                    int e = chosenExpert[t * k + s];
                    correction += weightGradient[rowOfChoice[s][t]] * scores[t * experts + e];
                }
                correction /= denominator * denominator;
            }
            for (int s = 0; s < k; s++) {
                int e = chosenExpert[t * k + s];
                double p = scores[t * experts + e];
                double dp = scale * (weightGradient[rowOfChoice[s][t]] / denominator - correction);
                out[t * experts + e] = dp * p * (1 - p);
            }
        }
        return out;
    }
}
