package org.dl4jmtp.generate;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The next-token choice alone, on fixed logits: greedy, frequencies of sampling, top-k, seeds, bad arguments. */
class SamplerTest {

    private static final double[] LOGITS = {Math.log(0.5), Math.log(0.3), Math.log(0.2)};
    private static final int DRAWS = 20_000;
    private static final double FREQUENCY_TOL = 0.015;

    @Test
    void greedyPicksTheLargestAndTheFirstOnTies() {
        assertEquals(0, Sampler.greedy().next(LOGITS));
        assertEquals(1, Sampler.greedy().next(new double[]{0.1, 2.0, -1.0, 2.0}));
        assertEquals(2, Sampler.greedy().next(Nd4j.createFromArray(new float[][]{{-3f, 0f, 5f, 1f}})), "[1, V] row");
    }

    @Test
    void temperatureZeroIsGreedy() {
        Sampler zero = Sampler.of(0, 0, 1);
        for (int i = 0; i < 100; i++) {
            assertEquals(1, zero.next(new double[]{0.1, 2.0, -1.0, 2.0}));
        }
        assertTrue(zero.isGreedy());
    }

    /** Random rows and several temperatures; the expected token is the index of the row's maximum. */
    @Test
    void topKOneIsGreedyForAnyTemperature() {
        Random random = new Random(3);
        for (double temperature : new double[]{0.1, 1.0, 10.0, 1e6}) {
            Sampler topOne = Sampler.of(temperature, 1, 17);
            for (int row = 0; row < 50; row++) {
                double[] logits = new double[11];
                int largest = random.nextInt(logits.length);
                for (int v = 0; v < logits.length; v++) {
                    logits[v] = v == largest ? 1.0 : random.nextDouble() * 0.99;
                }
                assertEquals(largest, topOne.next(logits), "temperature " + temperature + ", row " + row);
            }
        }
    }

    @Test
    void samplingFrequenciesMatchTheSoftmax() {
        double[] frequency = frequencies(Sampler.of(1.0, 0, 42));
        double[] expected = {0.5, 0.3, 0.2};
        for (int v = 0; v < 3; v++) {
            assertEquals(expected[v], frequency[v], FREQUENCY_TOL, "token " + v);
        }
    }

    /** Temperature 0.5 squares the probabilities: 0.25 : 0.09 : 0.04. */
    @Test
    void temperatureSharpensTheDistribution() {
        double[] frequency = frequencies(Sampler.of(0.5, 0, 43));
        double[] expected = {0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38};
        for (int v = 0; v < 3; v++) {
            assertEquals(expected[v], frequency[v], FREQUENCY_TOL, "token " + v);
        }
    }

    /** Top-2 renormalises 0.5 : 0.3 and never picks the third token. */
    @Test
    void topKKeepsOnlyTheLargestLogits() {
        double[] frequency = frequencies(Sampler.of(1.0, 2, 44));
        assertEquals(0.0, frequency[2], "token 2 is outside the top 2");
        assertEquals(0.625, frequency[0], FREQUENCY_TOL);
        assertEquals(0.375, frequency[1], FREQUENCY_TOL);
    }

    @Test
    void aSeededSamplerIsReproducible() {
        double[] flat = new double[10];
        int[] first = picks(Sampler.of(1.3, 0, 99), flat);
        assertArrayEquals(first, picks(Sampler.of(1.3, 0, 99), flat));
        assertFalse(Arrays.equals(first, picks(Sampler.of(1.3, 0, 100), flat)), "another seed, another sequence");
    }

    @Test
    void badArgumentsAreRejectedByName() {
        for (double temperature : new double[]{-0.5, Double.NaN, Double.POSITIVE_INFINITY}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Sampler.of(temperature, 0, 0));
            assertTrue(e.getMessage().contains("temperature"), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Sampler.of(1.0, -1, 0));
        assertTrue(e.getMessage().contains("topK"), e.getMessage());
    }

    private static double[] frequencies(Sampler sampler) {
        double[] counts = new double[LOGITS.length];
        for (int i = 0; i < DRAWS; i++) {
            counts[sampler.next(LOGITS)]++;
        }
        for (int v = 0; v < counts.length; v++) {
            counts[v] /= DRAWS;
        }
        return counts;
    }

    private static int[] picks(Sampler sampler, double[] logits) {
        int[] out = new int[200];
        for (int i = 0; i < out.length; i++) {
            out[i] = sampler.next(logits);
        }
        return out;
    }
}
