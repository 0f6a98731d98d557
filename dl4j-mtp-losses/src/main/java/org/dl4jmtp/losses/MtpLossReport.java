package org.dl4jmtp.losses;

import org.dl4jmtp.config.MtpLossNormalization;

import java.util.List;

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

    /** Label counts summed over the reports of several slices of one batch. */
    public static long[] totalCounts(List<MtpLossReport> slices) {
        long[] totals = new long[slices.get(0).labelCounts().length];
        for (MtpLossReport r : slices) {
            for (int d = 0; d < totals.length; d++) {
                totals[d] += r.labelCounts()[d];
            }
        }
        return totals;
    }

    /**
     * The report of a whole batch from the reports of its slices: each loss is the count-weighted mean of the slices'
     * (by main labels, or by the depth's own labels under {@link MtpLossNormalization#PER_DEPTH_COUNT}).
     */
    public static MtpLossReport combine(List<MtpLossReport> slices, MtpLossNormalization normalization) {
        MtpLossReport first = slices.get(0);
        long[] totals = totalCounts(slices);
        int depths = first.depths();
        double[] losses = new double[depths + 1];
        double total = 0;
        for (MtpLossReport r : slices) {
            double mainShare = share(r.labelCounts()[0], totals[0], slices.size());
            total += mainShare * r.totalLoss();
            for (int d = 0; d <= depths; d++) {
                boolean ownCount = d > 0 && normalization == MtpLossNormalization.PER_DEPTH_COUNT;
                losses[d] += (ownCount ? share(r.labelCounts()[d], totals[d], slices.size()) : mainShare)
                        * r.depthLosses()[d];
            }
        }
        return new MtpLossReport(total, losses, totals, first.lossScalingFactor());
    }

    /** count / total, or an equal share when nothing was counted (every loss is then 0). */
    private static double share(long count, long total, int slices) {
        return total > 0 ? (double) count / total : 1.0 / slices;
    }
}
