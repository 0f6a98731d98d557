package org.dl4jmtp.losses;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.layers.samediff.SameDiffOutputLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The runtime of {@link MtpLossLayer}: DL4J's SameDiff output layer, plus the per-depth report of the last scored
 * batch for listeners ({@link #lastReport()}).
 */
public class MtpLossRuntimeLayer extends SameDiffOutputLayer {

    private transient MtpLossEvaluator evaluator;
    private transient MtpLossReport lastReport;

    public MtpLossRuntimeLayer(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    @Override
    public double computeScore(double fullNetRegTerm, boolean training, LayerWorkspaceMgr workspaceMgr) {
        double score = super.computeScore(fullNetRegTerm, training, workspaceMgr);
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            if (evaluator == null) {
                evaluator = new MtpLossEvaluator((MtpLossLayer) layerConf(), dataType);
            }
            lastReport = evaluator.evaluate(input, labels, getParam(MtpLossLayer.WEIGHT));
        }
        return score;
    }

    /** Per-depth losses and label counts of the last batch this layer scored (null before the first). */
    public MtpLossReport lastReport() {
        return lastReport;
    }

    /** Replaces the report, for {@code DataParallelGraph}, which combines the reports of its batch slices. */
    public void setLastReport(MtpLossReport report) {
        this.lastReport = report;
    }
}
