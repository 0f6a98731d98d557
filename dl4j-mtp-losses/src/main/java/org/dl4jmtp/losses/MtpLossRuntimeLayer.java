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
 * The runtime of {@link MtpLossLayer}: DL4J's SameDiff output layer, plus the per-depth report of the last scored
 * batch for listeners ({@link #lastReport()}). The report's scalars come from the same graph execution as the score.
 */
public class MtpLossRuntimeLayer extends SameDiffOutputLayer {

    private transient MtpLossReport lastReport;
    /** The score variable, then the report's variables (see {@link #report}); set once the graph exists. */
    private transient String[] scoreOutputs;

    public MtpLossRuntimeLayer(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /**
     * {@link SameDiffOutputLayer#computeScore} with the per-depth losses and counts as extra outputs of the one
     * execution: the parent's private activateHelper(false, ...), inlined, with the same session memory (DL4J's
     * workspaces) and the same score.
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

        // as the parent: no out-of-scope arrays may stay referenced by the graph
        sameDiff.clearPlaceholders(true);
        sameDiff.clearOpInputs();
        return (score + fullNetRegTerm) / input.size(0);
    }

    /**
     * Scores a head input [mb, (1+D)·H, T] and labels directly, without workspaces, e.g. on activations recorded by
     * {@code feedForward} (validation): no second backbone pass. Like any scoring, this sets the layer's input, labels
     * and {@link #lastReport()}.
     */
    public MtpLossReport evaluate(INDArray headInput, INDArray labels) {
        LayerWorkspaceMgr noWorkspaces = LayerWorkspaceMgr.noWorkspaces();
        setInput(headInput, noWorkspaces);
        setLabels(labels);
        computeScore(0.0, false, noWorkspaces);
        return lastReport;
    }

    /** Per-depth losses and label counts of the last batch this layer scored (null before the first). */
    public MtpLossReport lastReport() {
        return lastReport;
    }

    /** Replaces the report, for {@code DataParallelGraph}, which combines the reports of its batch slices. */
    public void setLastReport(MtpLossReport report) {
        this.lastReport = report;
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
}
