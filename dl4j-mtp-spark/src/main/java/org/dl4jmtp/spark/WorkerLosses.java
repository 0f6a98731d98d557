package org.dl4jmtp.spark;

import org.dl4jmtp.losses.MtpLossReport;

import java.io.Serializable;

/**
 * One worker's losses of one optimizer step, as they travel from an executor to the driver: the MTP loss layer's
 * report (total, main and per-depth losses with their label counts) and the step it belongs to.
 *
 * @param step the worker's optimizer step, 1-based (the graph's iteration count after the update)
 */
public record WorkerLosses(long step, double totalLoss, double[] depthLosses, long[] labelCounts,
                           double lossScalingFactor) implements Serializable {

    public static WorkerLosses of(long step, MtpLossReport report) {
        return new WorkerLosses(step, report.totalLoss(), report.depthLosses().clone(), report.labelCounts().clone(),
                report.lossScalingFactor());
    }

    public MtpLossReport report() {
        return new MtpLossReport(totalLoss, depthLosses.clone(), labelCounts.clone(), lossScalingFactor);
    }
}
