package org.dl4jmtp.losses;

import org.dl4jmtp.config.MtpConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.Arrays;

/**
 * Times the loss head (score and gradients, {@link MtpHeadLoss#compute}) on the bench's small preset shapes: a
 * measurement to compare commits, not a test. Run with the test classpath:
 * {@code java -cp ... org.dl4jmtp.losses.MtpHeadLossTiming [iterations]}; prints the median milliseconds per call.
 */
public final class MtpHeadLossTiming {

    private static final int MB = 8;
    private static final int T = 256;
    private static final int H = 128;
    private static final int V = 256;
    private static final int DEPTHS = 2;

    private MtpHeadLossTiming() {
    }

    public static void main(String[] args) {
        int iterations = args.length > 0 ? Integer.parseInt(args[0]) : 50;
        MtpLossLayer settings = new MtpLossLayer.Builder().hiddenSize(H).vocabSize(V)
                .mtp(MtpConfig.builder().numLayers(DEPTHS).layerPattern("-").lossScalingFactor(0.3).build()).build();
        MtpHeadLoss loss = new MtpHeadLoss(settings);
        INDArray input = Nd4j.randn(1, new long[]{MB, (DEPTHS + 1L) * H, T}).castTo(DataType.FLOAT);
        INDArray labels = Nd4j.rand(DataType.FLOAT, MB, 1, T).muli(V).castTo(DataType.INT).castTo(DataType.FLOAT);
        labels.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, 8)).assign(MtpLossMath.IGNORE_INDEX);
        INDArray weight = Nd4j.randn(2, new long[]{V, H}).castTo(DataType.FLOAT).muli(0.05);
        INDArray weightGradient = Nd4j.create(DataType.FLOAT, V, H);
        double[] millis = new double[iterations];
        for (int i = -10; i < iterations; i++) {                                        // 10 untimed warm-up calls
            long start = System.nanoTime();
            loss.compute(input, labels, weight, weightGradient, () -> Nd4j.create(DataType.FLOAT, input.shape()));
            if (i >= 0) {
                millis[i] = (System.nanoTime() - start) / 1e6;
            }
        }
        Arrays.sort(millis);
        System.out.printf("loss head [%d, %d, %d] V=%d D=%d: median %.2f ms over %d calls%n",
                MB, (DEPTHS + 1) * H, T, V, DEPTHS, millis[iterations / 2], iterations);
    }
}
