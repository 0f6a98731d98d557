package org.dl4jmtp.losses;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.samediff.DL4JSameDiffMemoryMgr;
import org.deeplearning4j.nn.layers.samediff.SameDiffOutputLayer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.api.OutAndGrad;
import org.nd4j.autodiff.samediff.internal.InferenceSession;
import org.nd4j.common.base.Preconditions;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The runtime of {@link MtpLossLayer}: DL4J's SameDiff output layer, plus the per-depth report of the last scored
 * batch for listeners ({@link #lastReport()}). The report's scalars come from the same graph execution as the score.
 *
 * <p>In a training step ({@code computeGradientAndScore}) DL4J runs this layer's backprop and then asks for its score
 * on the same input and labels. Backprop already executes the head's forward pass, so it also fetches the score and
 * the report there, and the {@link #computeScore} that follows uses them instead of running the head (three
 * {@code [n, H]·[H, V]} products and log-softmaxes with D = 2) again. That result is used once, only for the very
 * same input and labels arrays, and dropped by {@link #clear()} (the end of every fit step).
 */
public class MtpLossRuntimeLayer extends SameDiffOutputLayer {

    private transient MtpLossReport lastReport;
    /** See {@link #scoreOutputs()}; set once the graph exists. */
    private transient String[] scoreOutputs;
    /** Score and report computed by the last backprop, waiting for the computeScore of the same step. */
    private transient ScoredBatch scoredByBackprop;

    private record ScoredBatch(INDArray input, INDArray labels, double score, MtpLossReport report) {
    }

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
        ScoredBatch scored = scoredByBackprop;
        scoredByBackprop = null;
        if (scored != null && scored.input() == input && scored.labels() == labels) {
            lastReport = scored.report();
            return (scored.score() + fullNetRegTerm) / input.size(0);
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
        Map<String, INDArray> out = sameDiff.output(placeholders, scoreOutputs());
        // scalars, read here: no array leaves this method, so none needs moving to another workspace
        double score = out.get(outputVar.name()).getDouble(0);
        lastReport = report(out);

        // as the parent: no out-of-scope arrays may stay referenced by the graph
        sameDiff.clearPlaceholders(true);
        sameDiff.clearOpInputs();
        return (score + fullNetRegTerm) / input.size(0);
    }

    /**
     * {@link SameDiffOutputLayer#backpropGradient}, with the score and the report as extra outputs of the same
     * execution (kept for the {@link #computeScore} that follows).
     */
    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(true);
        Preconditions.checkState(labels != null, "Cannot execute backprop: labels are not set");
        scoredByBackprop = null;
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            if (sameDiff == null) {
                doInit();
            }
            if (sameDiff.getFunction("grad") == null) {
                sameDiff.createGradFunction(INPUT_KEY);
            }
        }
        boolean gradScopedOut = workspaceMgr.isScopedOut(ArrayType.ACTIVATION_GRAD);
        String wsNameGrad = workspaceMgr.getWorkspaceName(ArrayType.ACTIVATION_GRAD);
        Preconditions.checkState(gradScopedOut || wsNameGrad != null,
                "Activation gradients must have a workspace or be scoped out");
        InferenceSession session = sameDiff.getFunction("grad").getSessions().computeIfAbsent(
                Thread.currentThread().getId(), id -> SameDiff.getInferenceFactory().create(sameDiff.getFunction("grad")));
        session.setMmgr(new DL4JSameDiffMemoryMgr(workspaceMgr.getWorkspaceName(ArrayType.BP_WORKING_MEM), wsNameGrad,
                workspaceMgr.getConfiguration(ArrayType.BP_WORKING_MEM), workspaceMgr.getConfiguration(ArrayType.ACTIVATION_GRAD)));

        List<String> gradientsFor = new ArrayList<>(paramTable.keySet());
        gradientsFor.add(INPUT_KEY);
        Map<String, INDArray> placeholders = new HashMap<>();
        placeholders.put(INPUT_KEY, input);
        placeholders.put(LABELS_KEY, labels);
        OutAndGrad result = sameDiff.calculateGradientsAndOutputs(placeholders, Arrays.asList(scoreOutputs()), gradientsFor);

        Gradient gradient = new DefaultGradient();
        for (String key : paramTable.keySet()) {
            INDArray sdGradient = result.getGradients().get(key);
            gradTable.get(key).assign(sdGradient);
            gradient.gradientForVariable().put(key, gradTable.get(key));
            if (sdGradient.closeable()) {
                sdGradient.close();
            }
        }
        Map<String, INDArray> outputs = result.getOutputs();
        scoredByBackprop = new ScoredBatch(input, labels, outputs.get(outputVar.name()).getDouble(0), report(outputs));
        INDArray inputGradient = result.getGradients().get(INPUT_KEY);

        // as the parent: no out-of-scope arrays may stay referenced by the graph
        sameDiff.clearPlaceholders(true);
        sameDiff.clearOpInputs();
        if (!gradScopedOut && !inputGradient.data().getParentWorkspace().getId().equals(wsNameGrad)) {
            inputGradient = workspaceMgr.dup(ArrayType.ACTIVATION_GRAD, inputGradient);
        } else if (gradScopedOut && inputGradient.isAttached()) {
            inputGradient = inputGradient.detach();
        }
        return new Pair<>(gradient, inputGradient);
    }

    @Override
    public void clear() {
        super.clear();
        scoredByBackprop = null;
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

    /** The score variable, then the report's variables (see {@link #report}). */
    private String[] scoreOutputs() {
        if (scoreOutputs == null) {
            scoreOutputs = scoreOutputs(outputVar.name(), ((MtpLossLayer) layerConf()).getDepths());
        }
        return scoreOutputs;
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
