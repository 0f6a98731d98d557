package org.dl4jmtp.losses;

import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.layers.M21Workarounds;
import org.dl4jmtp.layers.SdMath;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;

/**
 * The MTP loss (docs/model.md, "Loss") as SameDiff: shared LM head on every depth's hidden state, per-depth
 * cross-entropy with
 * pre-shifted labels (-100 = ignore), depth-d targets = labels rolled left d with the last d positions ignored (and,
 * when document ids are given, every target whose document differs from the position's), and
 * {@code total = L_main + (λ/D)·Σ_d L_d} with every CE sum divided by N = #main labels (NeMo Automodel) or, per depth,
 * by its own count N_d (Megatron). N = 0 gives 0, not NaN (division by max(N, 1)).
 *
 * <p>One definition, used by the loss layer for its score, its gradients and its per-depth report. The report's
 * variables have fixed names ({@link #depthLossName}, {@link #labelCountName}, {@link #TOTAL_LOSS}) so that the layer
 * can fetch them from the same execution as the score.
 */
public final class MtpLossMath {

    /** The label value of an ignored position. */
    public static final double IGNORE_INDEX = -100;

    /** Name of the total loss variable when D > 0 (with D = 0 the total is L_main itself). */
    public static final String TOTAL_LOSS = "mtp_total_loss";

    /** SameDiff variables of one loss definition; index 0 of the arrays is the main head, d the MTP depth d. */
    public static final class Outputs {
        public final SDVariable total;
        public final SDVariable[] depthLosses;
        public final SDVariable[] labelCounts;
        public final SDVariable mainLogits;

        Outputs(SDVariable total, SDVariable[] depthLosses, SDVariable[] labelCounts, SDVariable mainLogits) {
            this.total = total;
            this.depthLosses = depthLosses;
            this.labelCounts = labelCounts;
            this.mainLogits = mainLogits;
        }
    }

    private MtpLossMath() {
    }

    /** Name of L_d (d = 0: L_main) in a graph built by {@link #define}. */
    public static String depthLossName(int d) {
        return "mtp_loss_depth_" + d;
    }

    /** Name of the label count of depth d (d = 0: N) in a graph built by {@link #define}. */
    public static String labelCountName(int d) {
        return "mtp_label_count_depth_" + d;
    }

    /**
     * @param input  [B, (1+D)·H, T]: main hidden state after norm_f, then each depth's after its final_layernorm
     * @param labels [B, 1, T] pre-shifted labels, or [B, 2, T] labels and document ids
     * @param weight lm_head.weight [V, H]
     * @return the loss variables; {@code depthLosses[0]} is L_main, {@code labelCounts[0]} is N
     */
    public static Outputs define(SameDiff sd, SDVariable input, SDVariable labels, SDVariable weight, MtpLossLayer settings) {
        int h = settings.getHiddenSize();
        int v = settings.getVocabSize();
        int depths = settings.getDepths();
        SDVariable hidden = input.permute(0, 2, 1);                                      // [B, T, (1+D)H]
        SDVariable batchTime = SdMath.dims(sd, hidden, 0, 2);
        SDVariable targets = channel(sd, labels, 0);                                     // [B, T]
        SDVariable documents = settings.isDocumentIdsInLabels() ? channel(sd, labels, 1) : null;

        SDVariable[] ceSums = new SDVariable[depths + 1];
        SDVariable[] counts = new SDVariable[depths + 1];
        SDVariable mainLogits = null;
        SDVariable depthTargets = targets;
        SDVariable depthDocuments = documents;
        for (int d = 0; d <= depths; d++) {
            if (d > 0) {
                depthTargets = rollLeft(sd, depthTargets, IGNORE_INDEX);
                if (documents != null) {
                    depthDocuments = rollLeft(sd, depthDocuments, -1);
                    SDVariable sameDocument = depthDocuments.eq(documents).castTo(targets.dataType());
                    depthTargets = depthTargets.mul(sameDocument).add(sameDocument.rsub(1.0).mul(IGNORE_INDEX));
                }
            }
            SDVariable rows = SdMath.sliceLastAxis(sd, hidden, 3, (long) d * h, (long) (d + 1) * h).reshape(-1, h);
            SDVariable logits = sd.mmul(rows, weight, false, true, false);               // [B·T, V]
            if (d == 0) {
                mainLogits = SdMath.reshape(sd, logits, batchTime, SdMath.constDims(sd, v)).permute(0, 2, 1);
            }
            SDVariable flatTargets = depthTargets.reshape(-1);
            ceSums[d] = M21Workarounds.crossEntropyPerRow(sd, logits, flatTargets, v).sum();
            counts[d] = flatTargets.gte(0.0).castTo(logits.dataType()).sum(labelCountName(d));
        }

        SDVariable one = sd.constant(org.nd4j.linalg.factory.Nd4j.scalar(input.dataType(), 1.0));
        SDVariable mainCount = sd.math().max(counts[0], one);
        SDVariable[] losses = new SDVariable[depths + 1];
        losses[0] = ceSums[0].div(depthLossName(0), mainCount);
        SDVariable total = losses[0];
        for (int d = 1; d <= depths; d++) {
            SDVariable denominator = settings.getNormalization() == MtpLossNormalization.PER_DEPTH_COUNT
                    ? sd.math().max(counts[d], one) : mainCount;
            losses[d] = ceSums[d].div(depthLossName(d), denominator);
            // the last sum is the total; named for the layer's report (same summation order as ever)
            total = total.add(d == depths ? TOTAL_LOSS : null, losses[d].mul(settings.getLossScalingFactor() / depths));
        }
        return new Outputs(total, losses, counts, mainLogits);
    }

    /** labels[:, channel, :] → [B, T]. */
    private static SDVariable channel(SameDiff sd, SDVariable labels, int channel) {
        return sd.stridedSlice(labels, new long[]{0, channel, 0}, new long[]{0, channel + 1, 0}, new long[]{1, 1, 1},
                0b101, 0b101, 0, 0, 0b010);
    }

    /** v[:, t+1] for t < T-1, {@code fill} at the last position. */
    private static SDVariable rollLeft(SameDiff sd, SDVariable v, double fill) {
        SDVariable tail = sd.stridedSlice(v, new long[]{0, 1}, new long[]{0, 0}, new long[]{1, 1}, 0b01, 0b11, 0, 0, 0);
        SDVariable first = sd.stridedSlice(v, new long[]{0, 0}, new long[]{0, 1}, new long[]{1, 1}, 0b01, 0b01, 0, 0, 0);
        return sd.concat(1, tail, sd.zerosLike(first).add(fill));
    }
}
