package org.dl4jmtp.examples;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.Arrays;
import java.util.SplittableRandom;

/** Next-token choice from logits: greedy (temperature 0) or sampling with temperature and top-k, seeded. */
final class TokenSampler {

    private final double temperature;
    private final int topK;
    private final SplittableRandom random;

    TokenSampler(double temperature, int topK, long seed) {
        this.temperature = temperature;
        this.topK = topK;
        this.random = new SplittableRandom(seed);
    }

    /** The token for position t of logits [1, T, V]. */
    long next(INDArray logits, int t) {
        if (temperature == 0) {
            return GenerateCommand.argmax(logits, t);
        }
        double[] row = logits.get(NDArrayIndex.point(0), NDArrayIndex.point(t), NDArrayIndex.all())
                .castTo(DataType.DOUBLE).toDoubleVector();
        double cutoff = Double.NEGATIVE_INFINITY;
        if (topK > 0 && topK < row.length) {
            double[] sorted = row.clone();
            Arrays.sort(sorted);
            cutoff = sorted[row.length - topK];
        }
        double max = Arrays.stream(row).max().orElse(0);
        double[] weights = new double[row.length];
        double total = 0;
        for (int v = 0; v < row.length; v++) {
            weights[v] = row[v] >= cutoff ? Math.exp((row[v] - max) / temperature) : 0;
            total += weights[v];
        }
        double u = random.nextDouble() * total;
        for (int v = 0; v < row.length; v++) {
            u -= weights[v];
            if (u <= 0 && weights[v] > 0) {
                return v;
            }
        }
        return GenerateCommand.argmax(logits, t);
    }
}
