package org.dl4jmtp.moe;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The balancing rule bias_e += rate · sign(mean(c) − c_e) on hand-made routing counts. */
class ExpertBiasBalancingTest {

    @Test
    void anOverloadedExpertLosesTheRateAnUnderloadedOneGainsItOneAtTheMeanStays() {
        // 4 experts, 24 routed tokens, mean 6: expert 0 over, expert 1 under, experts 2 and 3 exactly at the mean
        INDArray bias = Nd4j.create(new float[]{0f, 0.5f, -0.25f, 1f}, new long[]{4}, DataType.FLOAT);
        ExpertBiasBalancing.update(bias, new long[]{10, 2, 6, 6}, 0.01);
        float rate = 0.01f;   // in float, as Megatron updates its float32 bias
        assertArrayEquals(new float[]{0f - rate, 0.5f + rate, -0.25f, 1f}, bias.toFloatVector());
    }

    @Test
    void theStepDoesNotDependOnHowFarFromTheMeanALoadIs() {
        // mean 25/3 (not an integer): 1 and 8 are below it, 16 above it
        INDArray bias = Nd4j.zeros(DataType.DOUBLE, 1, 3);
        ExpertBiasBalancing.update(bias, new long[]{1, 8, 16}, 1e-3);
        assertArrayEquals(new double[]{1e-3, 1e-3, -1e-3}, bias.toDoubleVector());
        ExpertBiasBalancing.update(bias, new long[]{1, 8, 16}, 1e-3);
        assertArrayEquals(new double[]{2e-3, 2e-3, -2e-3}, bias.toDoubleVector(), 0.0);
    }

    @Test
    void aBalancedStepOrARateOfZeroLeavesTheBiasBitIdentical() {
        INDArray bias = Nd4j.create(new double[]{0.1, -0.2, 0.3}, new long[]{3}, DataType.DOUBLE);
        ExpertBiasBalancing.update(bias, new long[]{5, 5, 5}, 0.5);
        ExpertBiasBalancing.update(bias, new long[]{0, 7, 9}, 0.0);
        assertArrayEquals(new double[]{0.1, -0.2, 0.3}, bias.toDoubleVector(), 0.0);
    }

    @Test
    void countsOfAnotherExpertNumberOrANegativeRateAreRejected() {
        INDArray bias = Nd4j.zeros(DataType.FLOAT, 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ExpertBiasBalancing.update(bias, new long[]{1, 2, 3}, 0.01));
        assertTrue(e.getMessage().contains("3 entries") && e.getMessage().contains("4"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ExpertBiasBalancing.update(bias, new long[4], -1));
        assertTrue(e.getMessage().contains("rate"), e.getMessage());
    }
}
