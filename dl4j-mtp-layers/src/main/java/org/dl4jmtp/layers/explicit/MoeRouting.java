package org.dl4jmtp.layers.explicit;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.api.ops.impl.shape.Gather;
import org.nd4j.linalg.api.ops.impl.shape.OneHot;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The routing of one MoE forward pass: each token's top-k experts on {@code score + correction bias}, their weights
 * from the unbiased scores (spec §3.4), and the dispatch plan that sorts the n·k (token, expert) assignments by expert
 * so that each expert's tokens are one contiguous block of rows.
 *
 * <p>Selection and weights are array ops; only the n·k chosen expert ids come to the host, where the dispatch plan
 * (row indices for the sparse GEMMs) is made. Selection matches the SameDiff MoE ({@code M21Workarounds.topKMask}):
 * k rounds of argmax, the lowest index winning a tie. Within an expert's block, tokens keep their order. Weights and
 * the router's gradient are worked out in double, whatever the graph's type.
 */
final class MoeRouting {

    /** Added to the sum of the selected weights before normalising, as HF does. */
    static final double NORM_EPS = 1e-20;
    /** Subtracted from a chosen score so that it never wins a later round (scores are sigmoid outputs plus a bias). */
    private static final double CHOSEN = 1e9;

    final int tokens;
    final int experts;
    final int k;
    private final boolean normalize;
    private final double scale;

    /** Rows of expert e in dispatch order: {@code expertStart[e]} to {@code expertStart[e + 1] - 1}. */
    final int[] expertStart;
    /** [n·k] the token of each dispatch row. */
    final int[] tokenOfRow;
    /** [k][n] the dispatch row of token t's s-th choice. */
    final int[][] rowOfChoice;
    /** [n·k, 1] the routing weight of each dispatch row, in the scores' type. */
    INDArray weightOfRow;

    /** [n, k] double: the unbiased score of token t's s-th choice. */
    private INDArray chosenScores;
    /** [n, 1] double: what token t's weights are divided by. */
    private INDArray normalizer;
    /** [n·k] the dispatch row of choice t·k + s. */
    private final long[] rowOfEachChoice;
    /** [n·k] the index t·E + e of choice t·k + s in the flat [n·E] scores. */
    private final long[] scoreOfEachChoice;

    private MoeRouting(int tokens, int experts, int k, boolean normalize, double scale) {
        this.tokens = tokens;
        this.experts = experts;
        this.k = k;
        this.normalize = normalize;
        this.scale = scale;
        this.expertStart = new int[experts + 1];
        this.tokenOfRow = new int[tokens * k];
        this.rowOfChoice = new int[k][tokens];
        this.rowOfEachChoice = new long[tokens * k];
        this.scoreOfEachChoice = new long[tokens * k];
    }

    /**
     * @param scores         [n, E] sigmoid router scores ('c' order)
     * @param correctionBias [E] {@code e_score_correction_bias}, used for the selection only
     * @param cache          where the arrays backprop reads go
     */
    static MoeRouting route(INDArray scores, INDArray correctionBias, int k, boolean normalize, double scale,
                            RowMixer.Cache cache) {
        int tokens = (int) scores.size(0);
        int experts = (int) scores.size(1);
        MoeRouting r = new MoeRouting(tokens, experts, k, normalize, scale);
        r.dispatch(select(scores, correctionBias.reshape(1, experts), k));
        r.weigh(scores, cache);
        return r;
    }

    /** The chosen expert of choice t·k + s: k rounds of argmax on the device, then n·k ids to the host. */
    private static int[] select(INDArray scores, INDArray correctionBias, int k) {
        INDArray remaining = scores.addRowVector(correctionBias);
        if (!Double.isFinite(remaining.sumNumber().doubleValue())) {
            throw new IllegalStateException("a MoE router score is not finite (NaN or Infinity): the layer input or the"
                    + " router weights hold NaN/Inf");
        }
        INDArray chosen = Nd4j.createUninitialized(DataType.LONG, scores.size(0), k);
        for (int s = 0; s < k; s++) {
            INDArray best = Nd4j.argMax(remaining, 1);
            chosen.getColumn(s).assign(best);
            if (s < k - 1) {
                remaining.subi(Nd4j.exec(new OneHot(best, (int) scores.size(1), -1, CHOSEN, 0.0,
                        remaining.dataType()))[0]);
            }
        }
        return chosen.data().asInt();                                                   // the routing indices
    }

    private void dispatch(int[] chosenExpert) {
        int[] count = new int[experts];
        for (int e : chosenExpert) {
            count[e]++;
        }
        for (int e = 0; e < experts; e++) {
            expertStart[e + 1] = expertStart[e] + count[e];
        }
        int[] next = expertStart.clone();
        for (int t = 0; t < tokens; t++) {
            for (int s = 0; s < k; s++) {
                int e = chosenExpert[t * k + s];
                int row = next[e]++;
                tokenOfRow[row] = t;
                rowOfChoice[s][t] = row;
                rowOfEachChoice[t * k + s] = row;
                scoreOfEachChoice[t * k + s] = (long) t * experts + e;
            }
        }
    }

    /** w = c·p / (Σ p + eps) over the chosen scores p (c·p without normalisation), put in dispatch order. */
    private void weigh(INDArray scores, RowMixer.Cache cache) {
        chosenScores = cache.keep(gather(scores.reshape((long) tokens * experts), scoreOfEachChoice)
                .castTo(DataType.DOUBLE).reshape(tokens, k));
        normalizer = cache.keep(normalize ? chosenScores.sum(true, 1).addi(NORM_EPS)
                : Nd4j.ones(DataType.DOUBLE, tokens, 1));
        INDArray weights = chosenScores.mul(scale).diviColumnVector(normalizer);
        long[] choiceOfRow = new long[tokens * k];
        for (int c = 0; c < choiceOfRow.length; c++) {
            choiceOfRow[(int) rowOfEachChoice[c]] = c;
        }
        weightOfRow = cache.keep(gather(weights.reshape((long) tokens * k), choiceOfRow).castTo(scores.dataType())
                .reshape((long) tokens * k, 1));
    }

    /** Number of tokens routed to expert {@code e}. */
    int count(int e) {
        return expertStart[e + 1] - expertStart[e];
    }

    /**
     * Backprop through the weights and the sigmoid: from dL/d(weight of each dispatch row) to dL/d(router logits).
     *
     * @param weightGradient [n·k, 1] or [n·k] dL/dw per dispatch row
     * @return [n, E] dL/dlogit in {@code type}, zero for unselected experts (the selection itself is constant)
     */
    INDArray logitGradient(INDArray weightGradient, DataType type) {
        INDArray dw = gather(weightGradient.reshape((long) tokens * k).castTo(DataType.DOUBLE), rowOfEachChoice)
                .reshape(tokens, k);
        // normalised: w_s = c·p_s / D with D = Σ p + eps, so dp_j = c·(dw_j / D − Σ_s dw_s·p_s / D²)
        INDArray dp = dw.divColumnVector(normalizer);
        if (normalize) {
            dp.subiColumnVector(dw.mul(chosenScores).sum(true, 1).divi(normalizer.mul(normalizer)));
        }
        INDArray onChosen = dp.muli(scale).muli(chosenScores).muli(chosenScores.rsub(1.0));  // σ' = p·(1 − p)
        INDArray out = Nd4j.zeros(DataType.DOUBLE, (long) tokens * experts);
        Nd4j.exec(DynamicCustomOp.builder("scatter_add").addInputs(out, Nd4j.createFromArray(scoreOfEachChoice),
                onChosen.reshape((long) tokens * k)).addOutputs(out).build());
        return out.reshape(tokens, experts).castTo(type);
    }

    private static INDArray gather(INDArray vector, long[] indices) {
        return Nd4j.exec(new Gather(vector, Nd4j.createFromArray(indices), 0))[0];
    }
}
