package org.dl4jmtp.generate;

import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from a row of logits: greedy (the argmax, the first one on ties as torch.argmax) or sampled
 * from {@code softmax(logits / temperature)} restricted to the top k, with a seeded random stream.
 *
 * <p>A sampling Sampler carries its random state from pick to pick: a new one with the same seed repeats a
 * generation. The greedy one is stateless and can be shared.
 */
public final class Sampler {

    private static final Sampler GREEDY = new Sampler(0, 0, 0);

    private final double temperature;
    private final int topK;
    private final SplittableRandom random;

    private Sampler(double temperature, int topK, long seed) {
        this.temperature = temperature;
        this.topK = topK;
        this.random = new SplittableRandom(seed);
    }

    /** The argmax of every row. */
    public static Sampler greedy() {
        return GREEDY;
    }

    /**
     * @param temperature finite and {@code >= 0}; 0 is greedy
     * @param topK        sample among the k largest logits ({@code >= 0}; 0 = all); ties with the k-th are kept
     * @param seed        seed of the random stream
     */
    public static Sampler of(double temperature, int topK, long seed) {
        if (!(temperature >= 0 && Double.isFinite(temperature))) {
            throw new IllegalArgumentException("temperature must be finite and >= 0, got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("topK must be >= 0, got " + topK);
        }
        return new Sampler(temperature, topK, seed);
    }

    /** True when every pick is the argmax. */
    public boolean isGreedy() {
        return temperature == 0;
    }

    /** The token picked from the logits of one position (V values: a vector [V] or a row [1, V]). */
    public int next(INDArray logits) {
        return next(RowOps.values(logits));
    }

    /** The token picked from the logits of one position. */
    public int next(double[] logits) {
        if (isGreedy()) {
            return argmax(logits);
        }
        double cutoff = Double.NEGATIVE_INFINITY;
        if (topK > 0 && topK < logits.length) {
            double[] sorted = logits.clone();
            Arrays.sort(sorted);
            cutoff = sorted[logits.length - topK];
        }
        double max = Arrays.stream(logits).max().orElse(0);
        double[] weights = new double[logits.length];
        double total = 0;
        for (int v = 0; v < logits.length; v++) {
            weights[v] = logits[v] >= cutoff ? Math.exp((logits[v] - max) / temperature) : 0;
            total += weights[v];
        }
        double u = random.nextDouble() * total;
        for (int v = 0; v < logits.length; v++) {
            u -= weights[v];
            if (u <= 0 && weights[v] > 0) {
                return v;
            }
        }
        // rounding left u slightly above 0 after the last weight: the most likely token
        return argmax(logits);
    }

    /** Index of the largest logit; the first one on ties (as torch.argmax). */
    private static int argmax(double[] logits) {
        int best = 0;
        for (int v = 1; v < logits.length; v++) {
            if (logits[v] > logits[best]) {
                best = v;
            }
        }
        return best;
    }
}
