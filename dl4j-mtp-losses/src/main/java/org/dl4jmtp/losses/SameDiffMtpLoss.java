package org.dl4jmtp.losses;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.layers.samediff.SameDiffOutputLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The SameDiff runtime of {@link MtpLossLayer}: DL4J's SameDiff output layer executing {@link MtpLossMath}, plus the
 * per-depth report, read from the definition's named loss and count variables after each score.
 */
public class SameDiffMtpLoss extends SameDiffOutputLayer implements MtpLossReporting {

    private transient MtpLossReport lastReport;

    public SameDiffMtpLoss(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    @Override
    public double computeScore(double fullNetRegTerm, boolean training, LayerWorkspaceMgr workspaceMgr) {
        double score = super.computeScore(fullNetRegTerm, training, workspaceMgr);
        lastReport = report();
        return score;
    }

    /** One more execution of the definition for the report's variables (the reference runtime: clarity over speed). */
    private MtpLossReport report() {
        MtpLossLayer settings = (MtpLossLayer) layerConf();
        int depths = settings.getDepths();
        List<String> names = new ArrayList<>();
        for (int d = 0; d <= depths; d++) {
            names.add(MtpLossMath.depthLossName(d));
            names.add(MtpLossMath.labelCountName(d));
        }
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            Map<String, INDArray> placeholders = new HashMap<>();
            placeholders.put(INPUT_KEY, input.dup());
            placeholders.put(LABELS_KEY, labels.dup());
            Map<String, INDArray> out = sameDiff.output(placeholders, names);
            double[] losses = new double[depths + 1];
            long[] counts = new long[depths + 1];
            double total = 0;
            for (int d = 0; d <= depths; d++) {
                losses[d] = out.get(MtpLossMath.depthLossName(d)).getDouble(0);
                counts[d] = Math.round(out.get(MtpLossMath.labelCountName(d)).getDouble(0));
                total += d == 0 ? losses[0] : losses[d] * settings.getLossScalingFactor() / depths;
            }
            return new MtpLossReport(total, losses, counts, settings.getLossScalingFactor());
        }
    }

    @Override
    public MtpLossReport evaluate(INDArray headInput, INDArray labels) {
        LayerWorkspaceMgr noWorkspaces = LayerWorkspaceMgr.noWorkspaces();
        setInput(headInput, noWorkspaces);
        setLabels(labels);
        computeScore(0.0, false, noWorkspaces);
        return lastReport;
    }

    @Override
    public MtpLossReport lastReport() {
        return lastReport;
    }

    @Override
    public void setLastReport(MtpLossReport report) {
        this.lastReport = report;
    }
}
