package org.dl4jmtp.examples.train;

import org.dl4jmtp.losses.MtpLossReport;

/** Receives the trainer's per-step losses and validation reports (e.g. to feed the training UI). */
public interface TrainingObserver {

    void onStep(long step, double learningRate, MtpLossReport losses, double tokensPerSecond);

    void onValidation(long step, ValidationReport report);
}
