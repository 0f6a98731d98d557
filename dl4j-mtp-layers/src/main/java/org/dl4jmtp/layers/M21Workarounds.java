package org.dl4jmtp.layers;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ops.impl.controlflow.compat.StopGradient;

/**
 * Every workaround for a DL4J/ND4J 1.0.0-M2.1 bug that the layers rely on, in one place.
 *
 * <p>Each method names the bug it works around; {@code M21WorkaroundsTest} asserts that the bug is still present,
 * so an upgrade that fixes it fails a test instead of being silently "fixed twice". {@code docs/dl4j-m21.md} lists
 * every M2.1 pitfall the project works around, these and the others, and where each workaround lives.
 */
public final class M21Workarounds {

    private M21Workarounds() {
    }

    /**
     * Bug B1: every {@code SameDiffLayer} returns gradients (for parameters and for its input) that are exactly 2×,
     * because the external-errors placeholder is added to itself in the gradient function. Returning
     * {@code 0.5·out + 0.5·stopGradient(out)} keeps the forward value and halves the gradient.
     * Apply to the output of every {@code SameDiffLayer.defineLayer}; output layers are not affected.
     */
    public static SDVariable fixDoubledGradient(SameDiff sd, SDVariable layerOutput) {
        SDVariable frozen = stopGradient(sd, layerOutput);
        return layerOutput.mul(0.5).add(frozen.mul(0.5));
    }

    /** Identity in the forward pass, zero gradient (the op exists in M2.1 but has no {@code SDBaseOps} method). */
    public static SDVariable stopGradient(SameDiff sd, SDVariable x) {
        return new StopGradient(sd, x).outputVariable();
    }

    /**
     * Bug B6: {@code loss.sparseSoftmaxCrossEntropy}/{@code softmaxCrossEntropy} ignore the upstream gradient, so a
     * weight or a mean applied after them is silently dropped in backprop. This hand-written version is
     * {@code -Σ_v logSoftmax(logits)_v · onehot(target)_v} per row.
     *
     * @param logits  [n, V]
     * @param targets [n] class ids stored as floating point; rows with a negative id (e.g. -100) are ignored
     * @return [n] per-row cross-entropy, 0 for ignored rows
     */
    public static SDVariable crossEntropyPerRow(SameDiff sd, SDVariable logits, SDVariable targets, int vocabSize) {
        SDVariable valid = targets.gte(0.0).castTo(logits.dataType());
        // ignored rows point at class 0 and are multiplied by 0 below; oneHot of a negative id is not relied on
        SDVariable safeIds = targets.mul(valid).castTo(DataType.INT);
        SDVariable oneHot = sd.oneHot(safeIds, vocabSize, -1, 1.0, 0.0, logits.dataType());
        // logSoftmax over the last axis: logSoftmax(x, dim) fails while building the gradient function in M2.1
        SDVariable logProbs = sd.nn().logSoftmax(logits);
        SDVariable picked = logProbs.mul(oneHot).sum(false, 1);
        return picked.neg().mul(valid);
    }

    /**
     * Bug B5: {@code nn.topK} passes its integer arguments as (sorted, k) while libnd4j reads (k, sorted), so it always
     * returns k = 1; it has no gradient either, and a subclass fixing the arguments does not survive the copy SameDiff
     * makes of the graph for backprop. So the top k are found by k rounds of argmax, each removing its winner.
     * Returns a 0/1 mask [n, E] of the k largest entries of each row of {@code scores} (ties: lowest index first);
     * the mask is a constant for backprop.
     */
    public static SDVariable topKMask(SameDiff sd, SDVariable scores, int k, int numColumns) {
        SDVariable remaining = stopGradient(sd, scores);
        SDVariable mask = null;
        for (int round = 0; round < k; round++) {
            SDVariable winner = sd.oneHot(sd.argmax(remaining, 1), numColumns, -1, 1.0, 0.0, scores.dataType());
            mask = mask == null ? winner : mask.add(winner);
            if (round < k - 1) {
                // no dangling variable after the last round: SameDiff would take it for the layer's loss
                remaining = remaining.sub(winner.mul(TOPK_REMOVED));
            }
        }
        return mask;
    }

    /** Subtracted from a selected score so that it never wins again (scores are sigmoid outputs plus a bias). */
    private static final double TOPK_REMOVED = 1e9;

    /**
     * Bug B4: the gradient of {@code cumsum} along any axis other than 0 leaks across rows. Cumulative sum along
     * {@code axis} done as permute-to-front, cumsum on axis 0 (correct), permute back.
     */
    public static SDVariable cumsumAlongAxis(SameDiff sd, SDVariable x, int axis, int rank) {
        if (axis == 0) {
            return sd.cumsum(x, false, false, 0);
        }
        int[] toFront = new int[rank];
        toFront[0] = axis;
        for (int i = 0, j = 1; i < rank; i++) {
            if (i != axis) {
                toFront[j++] = i;
            }
        }
        int[] back = new int[rank];
        for (int i = 0; i < rank; i++) {
            back[toFront[i]] = i;
        }
        SDVariable scanned = sd.cumsum(x.permute(toFront), false, false, 0);
        return scanned.permute(back);
    }

    /**
     * Bug B3: reductions with {@code keepDims=true} and a negative axis give wrong values. Mean over the last axis
     * with keepDims, addressed by its positive index.
     */
    public static SDVariable meanLastAxisKeepDims(SDVariable x, int rank) {
        return x.mean(true, rank - 1);
    }

    /** Sum over the last axis with keepDims, addressed by its positive index (bug B3). */
    public static SDVariable sumLastAxisKeepDims(SDVariable x, int rank) {
        return x.sum(true, rank - 1);
    }

    /**
     * Performance P1: M2.1's {@code multiply_bp} reduces the gradient of a broadcast operand with a generic index loop,
     * 10–20× slower than a same-shape {@code multiply_bp} (≈ 20 ms vs 1.3 ms for [2048, 256] · [256] on this
     * machine), while {@code add_bp} reduces broadcasts quickly. {@code x ⊙ v} for a {@code v} that broadcasts to x's
     * shape, with v first expanded by a broadcast add of zeros so that the product is same-shape. Same values and
     * gradients as {@code x.mul(v)}.
     */
    public static SDVariable broadcastMul(SameDiff sd, SDVariable x, SDVariable v) {
        return x.mul(v.add(sd.zerosLike(x)));
    }

    /**
     * {@code mmul} of a rank-3 input with a rank-2 weight fails in M2.1 (ranks must match) and {@code tensorMmul} has a
     * broken gradient. {@code x·Wᵀ} for x [B, T, in] and an nn.Linear-style weight W [out, in], by flattening the
     * leading axes, with a dynamic reshape back so the same graph serves any B and T.
     */
    public static SDVariable linear3d(SameDiff sd, SDVariable x, SDVariable weight, long inSize, long outSize) {
        SDVariable flat = x.reshape(-1, inSize);
        SDVariable y = sd.mmul(flat, weight, false, true, false);
        SDVariable leading = sd.shape(x).get(org.nd4j.autodiff.samediff.SDIndex.interval(0, 2));
        SDVariable outShape = sd.concat(0, leading, sd.constant(org.nd4j.linalg.factory.Nd4j.createFromArray(outSize)));
        return sd.reshape(y, outShape);
    }

}
