package org.dl4jmtp.losses;

/**
 * What both runtimes of {@link MtpLossLayer} offer besides DL4J's output-layer contract: the per-depth report of the
 * last batch they scored, and scoring of recorded head inputs.
 */
public interface MtpLossReporting {

    /** Per-depth losses and label counts of the last batch this layer scored (null before the first). */
    MtpLossReport lastReport();

    /** Replaces the report, for {@code DataParallelGraph}, which combines the reports of its batch slices. */
    void setLastReport(MtpLossReport report);

    /**
     * Scores a head input [mb, (1+D)·H, T] and labels directly, without workspaces, e.g. on activations recorded by
     * {@code feedForward} (validation). Like any scoring, this sets the layer's input, labels and {@link #lastReport()}.
     */
    MtpLossReport evaluate(org.nd4j.linalg.api.ndarray.INDArray headInput, org.nd4j.linalg.api.ndarray.INDArray labels);
}
