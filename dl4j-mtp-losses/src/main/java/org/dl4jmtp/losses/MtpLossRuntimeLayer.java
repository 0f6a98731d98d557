package org.dl4jmtp.losses;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.samediff.SameDiffOutputLayer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.base.Preconditions;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The explicit runtime of {@link MtpLossLayer}: computes the head and its loss with plain ND4J ops and an explicit
 * gradient ({@link MtpHeadLoss}); {@link SameDiffMtpLoss} executes the layer's SameDiff definition instead. Also
 * keeps the per-depth report of the last scored batch for listeners ({@link #lastReport()}).
 *
 * <p>In a training step ({@code computeGradientAndScore}) DL4J runs this layer's backprop and then asks for its score
 * on the same input and labels. Backprop already computes the score and the report, so the {@link #computeScore} that
 * follows uses them instead of running the head (three {@code [n, H]·[H, V]} products and softmaxes with D = 2) again.
 * That result is used once, only for the very same input and labels arrays, and dropped by {@link #clear()} (the end
 * of every fit step).
 */
public class MtpLossRuntimeLayer extends SameDiffOutputLayer implements MtpLossReporting {

    private transient MtpLossReport lastReport;
    /** Score and report computed by the last backprop, waiting for the computeScore of the same step. */
    private transient ScoredBatch scoredByBackprop;
    private transient long headPasses;

    private record ScoredBatch(INDArray input, INDArray labels, double score, MtpLossReport report) {
    }

    public MtpLossRuntimeLayer(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private MtpHeadLoss loss() {
        headPasses++;
        return new MtpHeadLoss((MtpLossLayer) layerConf());
    }

    /** Loss computations so far (each runs the head on every depth once); a training step needs one. */
    public long headPasses() {
        return headPasses;
    }

    /** The main logits [mb, V, T]. */
    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(false);
        MtpLossLayer settings = (MtpLossLayer) layerConf();
        INDArray out = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, input.dataType(),
                new long[]{input.size(0), settings.getVocabSize(), input.size(2)}, 'c');
        return MtpHeadLoss.mainLogits(input, getParam(MtpLossLayer.WEIGHT), settings.getHiddenSize(), out);
    }

    @Override
    public double computeScore(double fullNetRegTerm, boolean training, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(false);
        ScoredBatch scored = scoredByBackprop;
        scoredByBackprop = null;
        if (scored != null && scored.input() == input && scored.labels() == labels) {
            lastReport = scored.report();
            return (scored.score() + fullNetRegTerm) / input.size(0);
        }
        MtpHeadLoss.Result result = loss().compute(input, labels, getParam(MtpLossLayer.WEIGHT), null, null);
        lastReport = result.report();
        return (result.scaledScore() + fullNetRegTerm) / input.size(0);
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(true);
        Preconditions.checkState(labels != null, "Cannot execute backprop: labels are not set");
        scoredByBackprop = null;
        INDArray weightGradient = gradTable.get(MtpLossLayer.WEIGHT);
        MtpHeadLoss.Result result = loss().compute(input, labels, getParam(MtpLossLayer.WEIGHT), weightGradient,
                () -> workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, input.dataType(), input.shape(), 'c'));
        scoredByBackprop = new ScoredBatch(input, labels, result.scaledScore(), result.report());
        if (((MtpLossLayer) layerConf()).isFrozenWeight()) {
            weightGradient.assign(0);   // frozen head: nothing may move it (a NoOp updater applies the raw gradient)
        }
        Gradient gradient = new DefaultGradient(gradients);
        gradient.gradientForVariable().put(MtpLossLayer.WEIGHT, weightGradient);
        return new Pair<>(gradient, result.inputGradient());
    }

    @Override
    public void clear() {
        super.clear();
        scoredByBackprop = null;
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
