package org.dl4jmtp.losses;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.layers.samediff.DL4JSameDiffMemoryMgr;
import org.deeplearning4j.nn.layers.samediff.SameDiffOutputLayer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.InferenceSession;
import org.nd4j.common.base.Preconditions;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The SameDiff runtime of {@link MtpLossLayer}: DL4J's SameDiff output layer executing {@link MtpLossMath}, whose
 * score execution also returns the definition's named per-depth losses and counts (the report).
 */
public class SameDiffMtpLoss extends SameDiffOutputLayer implements MtpLossReporting {

    private transient MtpLossReport lastReport;
    /** The score variable, then the report's variables; set once the graph exists. */
    private transient String[] scoreOutputs;

    public SameDiffMtpLoss(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /**
     * DL4J's {@code SameDiffOutputLayer.computeScore} (its private activateHelper, inlined, with the same session
     * memory in DL4J's workspaces and the same score) with the report's variables as extra outputs of that execution.
     */
    @Override
    public double computeScore(double fullNetRegTerm, boolean training, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(false);
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            if (sameDiff == null) {
                doInit();
            }
        }
        if (scoreOutputs == null) {
            scoreOutputs = scoreOutputs(outputVar.name(), ((MtpLossLayer) layerConf()).getDepths());
        }
        String wsNameWorking = workspaceMgr.getWorkspaceName(ArrayType.FF_WORKING_MEM);
        String wsNameOutput = workspaceMgr.getWorkspaceName(ArrayType.ACTIVATIONS);
        Preconditions.checkState(workspaceMgr.isScopedOut(ArrayType.ACTIVATIONS) || wsNameOutput != null,
                "Activations must have a workspace or must be scoped out");
        InferenceSession session = sameDiff.getSessions().computeIfAbsent(Thread.currentThread().getId(),
                id -> SameDiff.getInferenceFactory().create(sameDiff));
        session.setMmgr(new DL4JSameDiffMemoryMgr(wsNameWorking, wsNameOutput,
                workspaceMgr.getConfiguration(ArrayType.FF_WORKING_MEM), workspaceMgr.getConfiguration(ArrayType.ACTIVATIONS)));

        Map<String, INDArray> placeholders = new HashMap<>();
        placeholders.put(INPUT_KEY, input);
        if (layerConf().labelsRequired() && labels != null) {
            placeholders.put(LABELS_KEY, labels);
        }
        Map<String, INDArray> out = sameDiff.output(placeholders, scoreOutputs);
        // scalars, read here: no array leaves this method, so none needs moving to another workspace
        double score = out.get(scoreOutputs[0]).getDouble(0);
        lastReport = report(out);
        sameDiff.clearPlaceholders(true);   // as DL4J: no out-of-scope array stays referenced by the graph
        sameDiff.clearOpInputs();
        return (score + fullNetRegTerm) / input.size(0);
    }

    private static String[] scoreOutputs(String scoreName, int depths) {
        List<String> names = new ArrayList<>();
        names.add(scoreName);
        for (int d = 0; d <= depths; d++) {
            names.add(MtpLossMath.depthLossName(d));
            names.add(MtpLossMath.labelCountName(d));
        }
        if (depths > 0) {
            names.add(MtpLossMath.TOTAL_LOSS);
        }
        return names.toArray(new String[0]);
    }

    private MtpLossReport report(Map<String, INDArray> out) {
        MtpLossLayer settings = (MtpLossLayer) layerConf();
        int depths = settings.getDepths();
        double[] losses = new double[depths + 1];
        long[] counts = new long[depths + 1];
        for (int d = 0; d <= depths; d++) {
            losses[d] = out.get(MtpLossMath.depthLossName(d)).getDouble(0);
            counts[d] = Math.round(out.get(MtpLossMath.labelCountName(d)).getDouble(0));
        }
        double total = depths > 0 ? out.get(MtpLossMath.TOTAL_LOSS).getDouble(0) : losses[0];
        return new MtpLossReport(total, losses, counts, settings.getLossScalingFactor());
    }

    /** As DL4J's, with a frozen head's weight gradient set to exactly zero (a NoOp updater applies the raw gradient). */
    @Override
    public org.nd4j.common.primitives.Pair<org.deeplearning4j.nn.gradient.Gradient, INDArray> backpropGradient(
            INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        org.nd4j.common.primitives.Pair<org.deeplearning4j.nn.gradient.Gradient, INDArray> result =
                super.backpropGradient(epsilon, workspaceMgr);
        if (((MtpLossLayer) layerConf()).isFrozenWeight()) {
            gradTable.get(MtpLossLayer.WEIGHT).assign(0);
            INDArray reported = result.getFirst().gradientForVariable().get(MtpLossLayer.WEIGHT);
            if (reported != null) {
                reported.assign(0);
            }
        }
        return result;
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
