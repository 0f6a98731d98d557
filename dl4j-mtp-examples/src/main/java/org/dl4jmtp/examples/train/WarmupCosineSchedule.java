package org.dl4jmtp.examples.train;

import lombok.Data;
import lombok.NoArgsConstructor;
import org.nd4j.linalg.schedule.ISchedule;

/**
 * Learning rate: linear warm-up from 0 to {@link #peak} over {@link #warmupSteps}, then cosine decay to
 * {@code minRatio·peak} at {@link #totalSteps}. Driven by DL4J's iteration count, which ModelSerializer saves, so a
 * resumed run continues the same schedule.
 */
@Data
@NoArgsConstructor
public class WarmupCosineSchedule implements ISchedule {

    private double peak;
    private int warmupSteps;
    private int totalSteps;
    private double minRatio;

    public WarmupCosineSchedule(double peak, int warmupSteps, int totalSteps, double minRatio) {
        if (!(peak > 0) || warmupSteps < 0 || totalSteps <= 0 || minRatio < 0 || minRatio > 1) {
            throw new IllegalArgumentException("Invalid learning-rate schedule: peak " + peak + ", warm-up " + warmupSteps
                    + ", total " + totalSteps + ", min ratio " + minRatio);
        }
        this.peak = peak;
        this.warmupSteps = warmupSteps;
        this.totalSteps = totalSteps;
        this.minRatio = minRatio;
    }

    @Override
    public double valueAt(int iteration, int epoch) {
        if (iteration < warmupSteps) {
            return peak * (iteration + 1) / warmupSteps;
        }
        double progress = Math.min(1.0, (iteration - warmupSteps) / (double) Math.max(1, totalSteps - warmupSteps));
        double cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
        return peak * (minRatio + (1 - minRatio) * cosine);
    }

    @Override
    public ISchedule clone() {
        return new WarmupCosineSchedule(peak, warmupSteps, totalSteps, minRatio);
    }
}
