package org.dl4jmtp.losses;

/**
 * The losses of one batch: {@code depthLosses[0]} is L_main, {@code depthLosses[d]} the (normalised) loss of MTP depth
 * d; {@code labelCounts[0]} is N (non-ignored main labels), {@code labelCounts[d]} the count of depth d's targets.
 */
public record MtpLossReport(double totalLoss, double[] depthLosses, long[] labelCounts, double lossScalingFactor) {

    public double mainLoss() {
        return depthLosses[0];
    }

    /** (λ/D)·Σ_d L_d. */
    public double mtpLoss() {
        return totalLoss - depthLosses[0];
    }

    public int depths() {
        return depthLosses.length - 1;
    }
}
