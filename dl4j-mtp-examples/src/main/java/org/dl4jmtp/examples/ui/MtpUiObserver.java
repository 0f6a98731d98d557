package org.dl4jmtp.examples.ui;

import org.dl4jmtp.examples.train.TrainingObserver;
import org.dl4jmtp.examples.train.ValidationReport;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.ui.MtpStatsRecorder;

import java.util.function.Supplier;

/** Feeds the trainer's per-step losses and validation reports to the training UI's {@link MtpStatsRecorder}. */
public final class MtpUiObserver implements TrainingObserver {

    private final MtpStatsRecorder recorder;
    private final Supplier<String> runDescription;
    private boolean described;

    /** @param runDescription called once, at the first step (after the trainer wrote run.json) */
    public MtpUiObserver(MtpStatsRecorder recorder, Supplier<String> runDescription) {
        this.recorder = recorder;
        this.runDescription = runDescription;
    }

    @Override
    public void onStep(long step, double learningRate, MtpLossReport losses, double tokensPerSecond) {
        if (!described) {
            described = true;
            recorder.recordRunInfo(runDescription.get(), losses.depths());
        }
        recorder.recordStep(step, learningRate, losses.totalLoss(), losses.depthLosses(), tokensPerSecond);
    }

    @Override
    public void onValidation(long step, ValidationReport report) {
        recorder.recordValidation(step, report.lossPerToken(), report.accuracyVsLabels(), report.accuracyVsMain(),
                report.simulatedAcceptLength(), report.expertLoad());
    }
}
