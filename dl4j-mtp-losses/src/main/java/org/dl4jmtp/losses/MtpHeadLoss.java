package org.dl4jmtp.losses;

import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.layers.NativeLimits;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.api.ops.impl.shape.Gather;
import org.nd4j.linalg.api.ops.impl.transforms.custom.CumSum;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Arrays;
import java.util.function.Supplier;

/**
 * The loss of {@link MtpLossLayer} ({@link MtpLossMath}, docs/model.md, "Loss") with plain ND4J ops and its gradient
 * written out:
 * per depth one {@code [n, H]·[H, V]} product, a softmax in place, and {@code dL/dlogits = c·(softmax − onehot)}, so there is no
 * log-softmax and no op-by-op backward. Targets, masks and per-row losses are array ops too: only the loss and the label
 * count of each depth come back to the host, so the head runs on a device backend without copying tensors out.
 *
 * <p>Everything is scaled by the minibatch size, as in the SameDiff definition: the score is {@code mb·total} and
 * the gradients are those of {@code mb·total} (DL4J divides both by the minibatch size).
 */
final class MtpHeadLoss {

    private final MtpLossLayer settings;

    MtpHeadLoss(MtpLossLayer settings) {
        this.settings = settings;
    }

    /** Score and report of one batch, and dL/d(input) when gradients were asked for. */
    record Result(double scaledScore, MtpLossReport report, INDArray inputGradient) {
    }

    /**
     * @param input          [mb, (1+D)·H, T] head input
     * @param labels         [mb, 1, T] pre-shifted labels (-100 = ignore), or [mb, 2, T] with document ids
     * @param weight         lm_head.weight [V, H]
     * @param weightGradient where d(mb·total)/dW goes, or null for the score only
     * @param inputGradient  allocates the [mb, (1+D)·H, T] input gradient (used only with {@code weightGradient})
     */
    Result compute(INDArray input, INDArray labels, INDArray weight, INDArray weightGradient,
                   Supplier<INDArray> inputGradient) {
        int h = settings.getHiddenSize();
        int depths = settings.getDepths();
        checkInput(input);
        int mb = (int) input.size(0);
        int t = (int) input.size(2);
        DepthTargets[] targets = targets(labels, mb, t);
        long[] counts = new long[depths + 1];
        for (int d = 0; d <= depths; d++) {
            counts[d] = targets[d].count();
        }
        long[] denominators = denominators(counts);

        INDArray gradIn = weightGradient == null ? null : inputGradient.get();
        double[] losses = new double[depths + 1];
        double total = 0;
        for (int d = 0; d <= depths; d++) {
            INDArray rows = depthRows(input, d, h);                                      // [n, H]
            NativeLimits.check("lm_head logits [B*T, V]", rows.size(0), weight.size(0));
            INDArray logits = Nd4j.gemm(rows, weight, false, true);                      // [n, V]
            double factor = d == 0 ? 1.0 : settings.getLossScalingFactor() / depths;         // of L_d in the total
            double gradientScale = weightGradient == null ? Double.NaN : mb * factor / denominators[d];
            losses[d] = softmaxCrossEntropy(logits, targets[d], gradientScale) / denominators[d];
            total += factor * losses[d];
            if (weightGradient != null) {
                // logits now hold d(mb·total)/d(logits)
                Nd4j.gemm(logits, rows, weightGradient, true, false, 1.0, d == 0 ? 0.0 : 1.0);
                INDArray gradRows = Nd4j.gemm(logits, weight, false, false);             // [n, H]
                gradIn.get(NDArrayIndex.all(), NDArrayIndex.interval((long) d * h, (long) (d + 1) * h), NDArrayIndex.all())
                        .assign(gradRows.reshape(mb, t, h).permute(0, 2, 1));
            }
        }
        MtpLossReport report = new MtpLossReport(total, losses, counts, settings.getLossScalingFactor());
        return new Result(mb * total, report, gradIn);
    }

    /** The main logits [mb, V, T] of a head input (the layer's activations), in the array {@code out} gives. */
    static INDArray mainLogits(INDArray input, INDArray weight, int hiddenSize, INDArray out) {
        NativeLimits.check("lm_head logits [B*T, V]", input.size(0) * input.size(2), weight.size(0));
        INDArray logits = Nd4j.gemm(depthRows(input, 0, hiddenSize), weight, false, true);
        return out.assign(logits.reshape(input.size(0), input.size(2), weight.size(0)).permute(0, 2, 1));
    }

    /**
     * Σ over the counted rows of {@code −log softmax(logits)[target]}. Unless {@code scale} is NaN (score only), the
     * logits are replaced by {@code scale·(softmax − onehot(target))} on those rows and by 0 on the other rows.
     */
    private static double softmaxCrossEntropy(INDArray logits, DepthTargets targets, double scale) {
        long n = logits.size(0);
        // [n·V, 1], a view (gemm's output is 'c'): ND4J's gather and scatter pick rows of it far faster than elements
        INDArray flat = logits.reshape(n * logits.size(1), 1);
        INDArray picked = Nd4j.exec(new Gather(flat, targets.logitIndex(), 0))[0];          // [n, 1]
        INDArray max = logits.max(true, 1);                                              // [n, 1]
        Transforms.exp(logits.subiColumnVector(max), false);
        INDArray ones = Nd4j.ones(logits.dataType(), logits.size(1), 1);
        INDArray sums = Nd4j.gemm(logits, ones, false, false).castTo(DataType.DOUBLE);  // [n, 1]
        // per-row losses and their sum in double whatever the graph's type: a float sum over many rows loses digits
        INDArray counted = targets.counted().castTo(DataType.DOUBLE);
        double ceSum = max.castTo(DataType.DOUBLE).add(Transforms.log(sums, true))
                .subi(picked.castTo(DataType.DOUBLE)).muli(counted).sumNumber().doubleValue();
        if (!Double.isNaN(scale)) {
            logits.muliColumnVector(counted.mul(scale).divi(sums).castTo(logits.dataType()));
            INDArray onTarget = targets.counted().mul(scale);
            Nd4j.exec(DynamicCustomOp.builder("scatter_sub").addInputs(flat, targets.logitIndex(), onTarget)
                    .addOutputs(flat).build());
        }
        return ceSum;
    }

    /** What each depth's CE sum is divided by: max(N, 1), or max(N_d, 1) for depth d under per-depth counts. */
    private long[] denominators(long[] counts) {
        long[] denominators = new long[counts.length];
        for (int d = 0; d < counts.length; d++) {
            boolean own = d > 0 && settings.getNormalization() == MtpLossNormalization.PER_DEPTH_COUNT;
            denominators[d] = Math.max(own ? counts[d] : counts[0], 1);
        }
        return denominators;
    }

    /**
     * The targets of one depth over the token rows b·T + t, built with array ops (nothing per element on the host).
     *
     * @param counted    [n, 1] 1 where the row has a target, 0 where it is ignored, in the graph's type
     * @param logitIndex [n] index of the row's target logit in the flat [n·V] logits (row·V on ignored rows)
     * @param count      number of counted rows
     */
    private record DepthTargets(INDArray counted, INDArray logitIndex, long count) {
    }

    /**
     * Target of row b·T + t for each depth d: labels[b, t+d] when t+d < T, the label is not ignored and (with document
     * ids) positions t … t+d are all in one document; otherwise the row is not counted.
     */
    private DepthTargets[] targets(INDArray labels, int mb, int t) {
        int channels = settings.isDocumentIdsInLabels() ? 2 : 1;
        if (labels == null || labels.rank() != 3 || labels.size(0) != mb || labels.size(1) != channels
                || labels.size(2) != t) {
            throw new IllegalArgumentException("lm_head labels must be [" + mb + ", " + channels + ", " + t + "]"
                    + (channels == 2 ? " (labels, document ids)" : " (labels with document ids in a second channel need"
                    + " MtpLossLayer.Builder.documentIdsInLabels(true))") + ", got "
                    + (labels == null ? "none" : Arrays.toString(labels.shape())));
        }
        INDArray ids = labels.get(NDArrayIndex.all(), NDArrayIndex.point(0), NDArrayIndex.all());   // [mb, T]
        checkLabelValues(ids);
        // [mb, T-1]: 1 where positions t and t+1 are in one document
        INDArray sameAsNext = channels == 2 && t > 1 ? labels.get(NDArrayIndex.all(), NDArrayIndex.point(1),
                NDArrayIndex.interval(0, t - 1)).eq(labels.get(NDArrayIndex.all(), NDArrayIndex.point(1),
                NDArrayIndex.interval(1, t))).castTo(ids.dataType()) : null;
        long n = (long) mb * t;
        int vocab = settings.getVocabSize();
        INDArray rowStart = Nd4j.createUninitialized(DataType.DOUBLE, n);                // row·V, exact in double
        Nd4j.exec(new CumSum(Nd4j.valueArrayOf(new long[]{n}, (double) vocab, DataType.DOUBLE), rowStart, true, false, 0));
        DepthTargets[] targets = new DepthTargets[settings.getDepths() + 1];
        INDArray inDocument = null;                                                      // [mb, T-d]: t … t+d in one
        for (int d = 0; d < targets.length; d++) {
            INDArray counted = Nd4j.zeros(ids.dataType(), mb, t);
            INDArray target = Nd4j.zeros(ids.dataType(), mb, t);                         // 0 on rows not counted
            if (d < t) {
                INDArray shifted = ids.get(NDArrayIndex.all(), NDArrayIndex.interval(d, t));
                INDArray countedHead = counted.get(NDArrayIndex.all(), NDArrayIndex.interval(0, t - d))
                        .assign(shifted.gte(0.0).castTo(ids.dataType()));
                if (sameAsNext != null && d > 0) {
                    INDArray link = sameAsNext.get(NDArrayIndex.all(), NDArrayIndex.interval(d - 1, t - 1));
                    inDocument = d == 1 ? link : inDocument.get(NDArrayIndex.all(), NDArrayIndex.interval(0, t - d)).mul(link);
                    countedHead.muli(inDocument);
                }
                target.get(NDArrayIndex.all(), NDArrayIndex.interval(0, t - d)).assign(shifted).muli(countedHead);
            }
            INDArray logitIndex = rowStart.add(target.reshape(n).castTo(DataType.DOUBLE)).castTo(DataType.LONG);
            targets[d] = new DepthTargets(counted.reshape(n, 1), logitIndex, counted.sumNumber().longValue());
        }
        return targets;
    }

    /** Every label must be -100 (ignore) or a token id in [0, V): checked by one reduction, read on failure only. */
    private void checkLabelValues(INDArray ids) {
        int vocab = settings.getVocabSize();
        DataType type = ids.dataType();
        INDArray tokenId = ids.gte(0.0).castTo(type).muli(ids.lt(vocab).castTo(type))
                .muli(ids.eq(Transforms.floor(ids, true)).castTo(type));
        INDArray bad = tokenId.addi(ids.eq(MtpLossMath.IGNORE_INDEX).castTo(type)).rsubi(1.0);
        if (bad.sumNumber().doubleValue() != 0) {
            RejectedId first = RejectedId.first(bad, ids);
            throw new IllegalArgumentException("lm_head label " + first.value() + " at " + first.position()
                    + " is neither -100 (ignore) nor a token id in [0, " + vocab + ")");
        }
    }

    /** Depth d's part of the head input as token rows [mb·T, H] (a copy; row b·T + t). */
    private static INDArray depthRows(INDArray input, int d, int h) {
        INDArray part = input.get(NDArrayIndex.all(), NDArrayIndex.interval((long) d * h, (long) (d + 1) * h),
                NDArrayIndex.all());
        return part.permute(0, 2, 1).dup('c').reshape(input.size(0) * input.size(2), h);
    }

    private void checkInput(INDArray input) {
        long width = (long) (settings.getDepths() + 1) * settings.getHiddenSize();
        if (input.rank() != 3 || input.size(1) != width) {
            throw new IllegalArgumentException("lm_head expects input [mb, " + width + ", T] ((1 + "
                    + settings.getDepths() + " depths) × hidden size " + settings.getHiddenSize() + "), got "
                    + Arrays.toString(input.shape()));
        }
    }
}
