package org.dl4jmtp.layers.explicit;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.shape.Gather;
import org.nd4j.linalg.api.ops.impl.shape.OneHot;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The routing of one MoE forward pass: each token's top-k experts on {@code score + correction bias}, their weights
 * from the unbiased scores (docs/model.md, "MoE"), and the dispatch plan that sorts the n·k (token, expert) assignments
 * by expert so that each expert's tokens are one contiguous block of rows.
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

    /** [k] of [n, E] double: 1 at token t's s-th choice. */
    private final INDArray[] choiceMask;
    /** [n, k] double: the unbiased score of token t's s-th choice. */
    private INDArray chosenScores;
    /** [n, 1] double: what token t's weights are divided by. */
    private INDArray normalizer;
    /** [n·k] the dispatch row of choice t·k + s. */
    private final long[] rowOfEachChoice;
    /** [n·k] the choice t·k + s of each dispatch row. */
    private final long[] choiceOfRow;

    private MoeRouting(int tokens, int experts, int k, boolean normalize, double scale) {
        this.tokens = tokens;
        this.experts = experts;
        this.k = k;
        this.normalize = normalize;
        this.scale = scale;
        this.expertStart = new int[experts + 1];
        this.tokenOfRow = new int[tokens * k];
        this.rowOfChoice = new int[k][tokens];
        this.choiceMask = new INDArray[k];
        this.rowOfEachChoice = new long[tokens * k];
        this.choiceOfRow = new long[tokens * k];
    }

    /**
     * @param scores         [n, E] sigmoid router scores
     * @param correctionBias [E] {@code e_score_correction_bias}, used for the selection only
     * @param cache          where the arrays backprop reads go
     */
    static MoeRouting route(INDArray scores, INDArray correctionBias, int k, boolean normalize, double scale,
                            RowMixer.Cache cache) {
        MoeRouting r = new MoeRouting((int) scores.size(0), (int) scores.size(1), k, normalize, scale);
        r.dispatch(r.select(scores, correctionBias.reshape(1, scores.size(1)), cache));
        r.weigh(scores, cache);
        return r;
    }

    /** The chosen expert of choice t·k + s: k rounds of argmax on the device, then n·k ids to the host. */
    private int[] select(INDArray scores, INDArray correctionBias, RowMixer.Cache cache) {
        INDArray remaining = scores.addRowVector(correctionBias);
        if (!Double.isFinite(remaining.sumNumber().doubleValue())) {
            throw new IllegalStateException("a MoE router score is not finite (NaN or Infinity): the layer input or the"
                    + " router weights hold NaN/Inf");
        }
        INDArray chosen = Nd4j.createUninitialized(DataType.LONG, tokens, k);
        for (int s = 0; s < k; s++) {
            INDArray best = Nd4j.argMax(remaining, 1);
            chosen.getColumn(s).assign(best);
            choiceMask[s] = cache.keep(Nd4j.exec(new OneHot(best, experts, -1, 1.0, 0.0, DataType.DOUBLE))[0]);
            if (s < k - 1) {
                remaining.subi(choiceMask[s].mul(CHOSEN).castTo(remaining.dataType()));
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
                int row = next[chosenExpert[t * k + s]]++;
                tokenOfRow[row] = t;
                rowOfChoice[s][t] = row;
                rowOfEachChoice[t * k + s] = row;
                choiceOfRow[row] = t * k + s;
            }
        }
    }

    /**
     * w = c·p / (Σ p + eps) over the chosen scores p (c·p without normalisation), put in dispatch order. A masked sum
     * picks each score exactly (one non-zero term).
     */
    private void weigh(INDArray scores, RowMixer.Cache cache) {
        INDArray exact = scores.castTo(DataType.DOUBLE);
        chosenScores = cache.keep(Nd4j.create(DataType.DOUBLE, tokens, k));
        for (int s = 0; s < k; s++) {
            chosenScores.getColumn(s).assign(exact.mul(choiceMask[s]).sum(1));
        }
        normalizer = cache.keep(normalize ? chosenScores.sum(true, 1).addi(NORM_EPS)
                : Nd4j.ones(DataType.DOUBLE, tokens, 1));
        INDArray weights = chosenScores.mul(scale).diviColumnVector(normalizer);
        weightOfRow = cache.keep(gather(weights, choiceOfRow).castTo(scores.dataType()));
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
        INDArray dw = gather(weightGradient.castTo(DataType.DOUBLE), rowOfEachChoice).reshape(tokens, k);
        // normalised: w_s = c·p_s / D with D = Σ p + eps, so dp_j = c·(dw_j / D − Σ_s dw_s·p_s / D²)
        INDArray dp = dw.divColumnVector(normalizer);
        if (normalize) {
            dp.subiColumnVector(dw.mul(chosenScores).sum(true, 1).divi(normalizer.mul(normalizer)));
        }
        INDArray onChosen = dp.muli(scale).muli(chosenScores).muli(chosenScores.rsub(1.0));  // σ' = p·(1 − p)
        INDArray out = choiceMask[0].mulColumnVector(onChosen.getColumn(0, true));
        for (int s = 1; s < k; s++) {
            out.addi(choiceMask[s].mulColumnVector(onChosen.getColumn(s, true)));            // one non-zero term: exact
        }
        return out.castTo(type);
    }

    /**
     * The entries {@code indices} of {@code array} (in c order) as a column: ND4J gathers the rows of a [len, 1]
     * column far faster than the elements of a vector.
     */
    private static INDArray gather(INDArray array, long[] indices) {
        return Nd4j.exec(new Gather(array.reshape(array.length(), 1), Nd4j.createFromArray(indices), 0))[0];
    }
}
