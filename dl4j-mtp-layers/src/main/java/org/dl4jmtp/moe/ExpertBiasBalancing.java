package org.dl4jmtp.moe;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Auxiliary-loss-free load balancing (DeepSeek-V3 §2.1.2; Megatron's {@code moe_router_enable_expert_bias}): after
 * each optimizer step every expert's {@code e_score_correction_bias} moves by a fixed rate toward balance,
 * {@code bias_e += rate · sign(mean(c) − c_e)}, with c the step's routed-token counts of the layer. An under-loaded
 * expert gains selection value, an over-loaded one loses it, one exactly at the mean stays. The bias only affects which
 * experts are selected, never the routing weights, and it receives no gradient.
 */
public final class ExpertBiasBalancing {

    private ExpertBiasBalancing() {
    }

    /**
     * Applies one update to {@code bias} in place, in the bias's own data type (as Megatron updates its float32 bias).
     *
     * @param bias   [E] or [1, E] the layer's {@code e_score_correction_bias} (a parameter view)
     * @param counts [E] tokens routed to each expert during the step (all replicas, all uses of the layer)
     * @param rate   the step size (≥ 0)
     */
    public static void update(INDArray bias, long[] counts, double rate) {
        if (counts.length != bias.length()) {
            throw new IllegalArgumentException("expert counts have " + counts.length + " entries but the correction bias "
                    + java.util.Arrays.toString(bias.shape()) + " has " + bias.length());
        }
        if (!(rate >= 0) || Double.isInfinite(rate)) {
            throw new IllegalArgumentException("router bias update rate must be finite and >= 0, got " + rate);
        }
        long total = 0;
        for (long c : counts) {
            total += c;
        }
        double[] step = new double[counts.length];
        for (int e = 0; e < counts.length; e++) {
            // mean − c_e compared exactly as total − E·c_e (no rounding of the mean)
            step[e] = Long.signum(total - (long) counts.length * counts[e]);
        }
        INDArray delta = Nd4j.create(step, bias.shape(), bias.dataType()).muli(rate);
        bias.addi(delta);
    }
}
