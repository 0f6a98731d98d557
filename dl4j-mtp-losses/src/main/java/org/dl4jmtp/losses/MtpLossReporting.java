package org.dl4jmtp.losses;

import org.deeplearning4j.nn.api.layers.IOutputLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What both runtimes of {@link MtpLossLayer} (output layers) offer besides DL4J's output-layer contract: the per-depth report of the
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
    default MtpLossReport evaluate(INDArray headInput, INDArray labels) {
        IOutputLayer layer = (IOutputLayer) this;
        LayerWorkspaceMgr noWorkspaces = LayerWorkspaceMgr.noWorkspaces();
        layer.setInput(headInput, noWorkspaces);
        layer.setLabels(labels);
        layer.computeScore(0.0, false, noWorkspaces);
        return lastReport();
    }
}
