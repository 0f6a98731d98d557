package org.dl4jmtp.losses;

import org.dl4jmtp.config.MtpLossNormalization;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Arrays;
import java.util.function.Supplier;

/**
 * The loss of {@link MtpLossLayer} ({@link MtpLossMath}, docs/model.md, "Loss") with plain ND4J ops and its gradient
 * written out:
 * per depth one {@code [n, H]·[H, V]} product, a softmax in place, and {@code dL/dlogits = c·(softmax − onehot)}, so there is no
 * log-softmax and no op-by-op backward. Targets, counts and the per-row losses are worked out on the host (n values).
 *
 * <p>Everything is scaled by the minibatch size, as in the SameDiff definition: the score is {@code mb·total} and
 * the gradients are those of {@code mb·total} (DL4J divides both by the minibatch size).
 */
final class MtpHeadLoss {

    /** Target id of an ignored row. */
    private static final int IGNORED = -1;

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
        int[][] targets = targets(labels, mb, t);
        long[] counts = new long[depths + 1];
        for (int d = 0; d <= depths; d++) {
            counts[d] = Arrays.stream(targets[d]).filter(y -> y != IGNORED).count();
        }
        long[] denominators = denominators(counts);

        INDArray gradIn = weightGradient == null ? null : inputGradient.get();
        double[] losses = new double[depths + 1];
        double total = 0;
        for (int d = 0; d <= depths; d++) {
            INDArray rows = depthRows(input, d, h);                                      // [n, H]
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
        INDArray logits = Nd4j.gemm(depthRows(input, 0, hiddenSize), weight, false, true);
        return out.assign(logits.reshape(input.size(0), input.size(2), weight.size(0)).permute(0, 2, 1));
    }

    /**
     * Σ over the non-ignored rows of {@code −log softmax(logits)[target]}. Unless {@code scale} is NaN (score only),
     * the logits are replaced by {@code scale·(softmax − onehot(target))} on those rows and by 0 on ignored rows.
     */
    private static double softmaxCrossEntropy(INDArray logits, int[] targets, double scale) {
        int n = targets.length;
        double[] picked = new double[n];
        for (int i = 0; i < n; i++) {
            if (targets[i] != IGNORED) {
                picked[i] = logits.getDouble(i, targets[i]);
            }
        }
        INDArray max = logits.max(true, 1);                                              // [n, 1]
        Transforms.exp(logits.subiColumnVector(max), false);
        INDArray ones = Nd4j.ones(logits.dataType(), logits.size(1), 1);
        double[] sums = Nd4j.gemm(logits, ones, false, false).reshape(n).toDoubleVector();
        double[] maxima = max.reshape(n).toDoubleVector();
        double ceSum = 0;
        double[] rowScale = new double[n];
        for (int i = 0; i < n; i++) {
            if (targets[i] != IGNORED) {
                ceSum += maxima[i] + Math.log(sums[i]) - picked[i];
                rowScale[i] = scale / sums[i];
            }
        }
        if (!Double.isNaN(scale)) {
            logits.muliColumnVector(Nd4j.createFromArray(rowScale).castTo(logits.dataType()).reshape(n, 1));
            for (int i = 0; i < n; i++) {
                if (targets[i] != IGNORED) {
                    logits.putScalar(i, targets[i], logits.getDouble(i, targets[i]) - scale);
                }
            }
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
     * Target of row b·T + t for each depth d: labels[b, t+d] when t+d < T, the label is not ignored and (with document
     * ids) positions t … t+d−1 are all in the document of t+d; otherwise {@link #IGNORED}.
     */
    private int[][] targets(INDArray labels, int mb, int t) {
        int channels = settings.isDocumentIdsInLabels() ? 2 : 1;
        if (labels == null || labels.rank() != 3 || labels.size(0) != mb || labels.size(1) != channels
                || labels.size(2) != t) {
            throw new IllegalArgumentException("lm_head labels must be [" + mb + ", " + channels + ", " + t + "]"
                    + (channels == 2 ? " (labels, document ids)" : " (labels with document ids in a second channel need"
                    + " MtpLossLayer.Builder.documentIdsInLabels(true))") + ", got "
                    + (labels == null ? "none" : Arrays.toString(labels.shape())));
        }
        double[] values = labels.castTo(DataType.DOUBLE).dup('c').reshape(labels.length()).toDoubleVector();
        int depths = settings.getDepths();
        int vocab = settings.getVocabSize();
        int[][] targets = new int[depths + 1][mb * t];
        for (int b = 0; b < mb; b++) {
            int base = b * channels * t;
            for (int i = 0; i < t; i++) {
                double label = values[base + i];
                if (label != MtpLossMath.IGNORE_INDEX && (label != Math.rint(label) || label < 0 || label >= vocab)) {
                    throw new IllegalArgumentException("lm_head label " + label + " at [" + b + ", " + i
                            + "] is neither -100 (ignore) nor a token id in [0, " + vocab + ")");
                }
            }
            for (int d = 0; d <= depths; d++) {
                for (int i = 0; i < t; i++) {
                    targets[d][b * t + i] = target(values, base, t, channels, i, d);
                }
            }
        }
        return targets;
    }

    private static int target(double[] values, int base, int t, int channels, int position, int depth) {
        int at = position + depth;
        if (at >= t || values[base + at] == MtpLossMath.IGNORE_INDEX) {
            return IGNORED;
        }
        if (channels == 2) {
            double document = values[base + t + at];
            for (int j = position; j < at; j++) {
                if (values[base + t + j] != document) {
                    return IGNORED;
                }
            }
        }
        return (int) values[base + at];
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
