package org.dl4jmtp.moe;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Arrays;

/**
 * The routing of one MoE forward pass, computed on the host (E is small, n·E values): each token's top-k experts on
 * {@code score + correction bias}, their weights from the unbiased scores (docs/model.md, "MoE"), and the dispatch plan
 * that sorts the n·k (token, expert) assignments by expert so that each expert's tokens are one contiguous block of
 * rows. The one routing of the explicit runtime ({@link SparseMoe}) and of decoding ({@link CachedMoe}).
 *
 * <p>Selection is the SameDiff MoE's ({@code M21Workarounds.topKMask}: k rounds of argmax, each removing its winner):
 * <ul>
 *     <li><b>ties</b> go to the lowest expert index;</li>
 *     <li>the compared values are {@link #selectionValues}, {@code score + bias} added in the network's data type as
 *     the graph adds them (a float network ties, or not, in float), so every runtime picks the same experts;</li>
 *     <li><b>NaN</b> scores throw an {@link IllegalStateException}: no expert is a meaningful choice for them (the
 *     SameDiff graph cannot throw; its output for such a token is NaN).</li>
 * </ul>
 * Within an expert's block, tokens keep their order.
 *
 * <p><b>Group-limited routing</b> ({@code n_group} groups of consecutive experts, {@code topk_group} &lt;
 * {@code n_group}), as HF's NemotronH router: a group's score is the sum of its two largest selection values; the
 * {@code topk_group} best groups are chosen (same argmax rounds and tie rule), and the top-k is taken among their
 * experts only (HF masks the others with −inf, so they are never chosen: k ≤ their number, checked by the config).
 * The group sum is rounded to the network's type as the graph computes it.
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
    private final int groups;
    private final int groupsChosen;
    private final boolean floatGroupSums;

    /** Rows of expert e in dispatch order: {@code expertStart[e]} to {@code expertStart[e + 1] - 1}. */
    public final int[] expertStart;
    /** [n·k] the token of each dispatch row. */
    public final int[] tokenOfRow;
    /** [k][n] the dispatch row of token t's s-th choice. */
    public final int[][] rowOfChoice;
    /** [n·k] the routing weight of each dispatch row. */
    public final double[] weightOfRow;

    private MoeRouting(double[] scores, int tokens, int experts, int k, boolean normalize, double scale, int groups,
                       int groupsChosen, boolean floatGroupSums) {
        if (groups < 1 || experts % groups != 0 || groupsChosen < 1 || groupsChosen > groups
                || (groupsChosen < groups && (experts / groups < 2 || k > groupsChosen * (experts / groups)))) {
            throw new IllegalArgumentException("invalid group-limited routing: " + experts + " experts in " + groups
                    + " groups, top-" + groupsChosen + " groups, top-" + k + " experts");
        }
        this.groups = groups;
        this.groupsChosen = groupsChosen;
        this.floatGroupSums = floatGroupSums;
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
     * {@code scores + correctionBias}, the values the top-k compares, in the scores' data type: the same broadcast add
     * as the SameDiff graph's, so that rounding (and with it every exact tie) is the graph's.
     *
     * @param scores         [n, E] sigmoid router scores
     * @param correctionBias [E] or [1, E] {@code e_score_correction_bias}
     */
    public static INDArray selectionValues(INDArray scores, INDArray correctionBias) {
        return scores.addRowVector(correctionBias.reshape(1, correctionBias.length()).castTo(scores.dataType()));
    }

    /**
     * @param scores    [n·E] sigmoid router scores, row-major
     * @param selection [n·E] {@link #selectionValues} of the same scores, row-major; used for the selection only
     */
    public static MoeRouting route(double[] scores, double[] selection, int tokens, int experts, int k,
                                   boolean normalize, double scale) {
        MoeRouting r = new MoeRouting(scores, tokens, experts, k, normalize, scale, 1, 1, false);
        r.select(selection);
        r.dispatch();
        return r;
    }

    /**
     * The routing {@code config} asks for: top-k, group-limited when {@code topk_group < n_group}.
     *
     * @param scores    [n·E] sigmoid router scores, row-major
     * @param selection [n·E] {@link #selectionValues} of the same scores, row-major; used for the selection only
     * @param type      the network's data type (FLOAT or DOUBLE), in which the graph sums a group's top two values
     */
    public static MoeRouting route(double[] scores, double[] selection, int tokens, MoeConfig config, DataType type) {
        if (type != DataType.FLOAT && type != DataType.DOUBLE) {
            throw new IllegalArgumentException("MoE routing runs in FLOAT or DOUBLE, got " + type);
        }
        MoeRouting r = new MoeRouting(scores, tokens, config.getNRoutedExperts(), config.getNumExpertsPerTok(),
                config.isNormTopkProb(), config.getRoutedScalingFactor(), config.getNGroup(), config.getTopkGroup(),
                type == DataType.FLOAT);
        r.select(selection);
        r.dispatch();
        return r;
    }

    private void select(double[] selection) {
        int[] count = new int[experts];
        boolean[] eligible = new boolean[experts];
        Arrays.fill(eligible, true);
        for (int t = 0; t < tokens; t++) {
            int base = t * experts;
            checkNotNaN(selection, base, t);
            checkNotNaN(scores, base, t);
            if (groupsChosen < groups) {
                markEligibleGroups(selection, base, eligible);
            }
            double selectedSum = 0;
            for (int s = 0; s < k; s++) {
                int best = -1;
                for (int e = 0; e < experts; e++) {
                    // strictly greater: on a tie the lower index, found first, stays (argmax's rule)
                    if (eligible[e] && !alreadyChosen(t, s, e)
                            && (best < 0 || selection[base + e] > selection[base + best])) {
                        best = e;
                    }
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

    /**
     * Marks the experts of this token's {@code topk_group} best groups eligible, the others not. A group's score is
     * the sum of its two largest selection values (rounded to float in a float network); groups are chosen by
     * argmax rounds, ties to the lower group.
     */
    private void markEligibleGroups(double[] selection, int base, boolean[] eligible) {
        int size = experts / groups;
        double[] groupScore = new double[groups];
        for (int g = 0; g < groups; g++) {
            double first = Double.NEGATIVE_INFINITY;
            double second = Double.NEGATIVE_INFINITY;
            for (int e = g * size; e < (g + 1) * size; e++) {
                double v = selection[base + e];
                if (v > first) {
                    second = first;
                    first = v;
                } else if (v > second) {
                    second = v;
                }
            }
            double sum = first + second;
            groupScore[g] = floatGroupSums ? (float) sum : sum;
        }
        Arrays.fill(eligible, false);
        boolean[] chosen = new boolean[groups];
        for (int round = 0; round < groupsChosen; round++) {
            int best = -1;
            for (int g = 0; g < groups; g++) {
                if (!chosen[g] && (best < 0 || groupScore[g] > groupScore[best])) {
                    best = g;
                }
            }
            chosen[best] = true;
            Arrays.fill(eligible, best * size, (best + 1) * size, true);
        }
    }

    private void checkNotNaN(double[] values, int base, int token) {
        for (int e = 0; e < experts; e++) {
            if (Double.isNaN(values[base + e])) {
                throw new IllegalStateException("MoE router produced NaN scores (token " + token + ", expert " + e
                        + "): the layer input, the router weights or the correction bias are not finite (NaN or Inf)");
            }
        }
    }

    /** Expert of token t's s-th choice (choices in selection order). */
    public int chosenExpert(int token, int choice) {
        return chosenExpert[token * k + choice];
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
