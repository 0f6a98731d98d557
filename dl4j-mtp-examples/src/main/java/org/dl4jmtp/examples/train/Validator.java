package org.dl4jmtp.examples.train;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.losses.MtpLossLayer;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossReporting;
import org.dl4jmtp.model.ExpertLoad;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.dl4jmtp.moe.ExpertCounts;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Validation of a model with MTP heads: per-depth loss (the loss layer's own definition), teacher-forced top-1
 * accuracy against the labels and against the main head's greedy prediction, the simulated acceptance length that
 * follows (NeMo Automodel's {@code simulated_accept_length} idea: joint prefix hits of the drafts, no decoder needed),
 * and the expert load of every MoE layer (backbone and MTP, by HF layer name), counted by the layers' own routing
 * ({@link ExpertLoad}).
 */
public final class Validator {

    private final NemotronV3ForCausalLM model;
    private final MtpLossReporting lossLayer;
    private final MtpLossLayer lossSettings;

    public Validator(NemotronV3ForCausalLM model) {
        this.model = model;
        this.lossLayer = (MtpLossReporting) model.graph().getLayer(GraphNames.LM_HEAD);
        this.lossSettings = (MtpLossLayer) model.graph().getLayer(GraphNames.LM_HEAD).conf().getLayer();
    }

    public ValidationReport evaluate(MultiDataSetIterator batches) {
        int depths = lossSettings.getDepths();
        double[] ceSum = new double[depths + 1];
        long[] targetCount = new long[depths + 1];
        long[] labelHits = new long[depths + 1];
        long[] mainHits = new long[depths + 1];
        long[] mainValid = new long[depths + 1];
        long[] jointHits = new long[depths + 1];
        long[] jointValid = new long[depths + 1];
        Map<String, long[]> expertCounts = new LinkedHashMap<>();
        long tokens = 0;
        ComputationGraph graph = model.graph();
        INDArray weight = model.headWeight();
        int h = model.config().getHiddenSize();

        batches.reset();
        ExpertLoad.discard(graph);
        while (batches.hasNext()) {
            MultiDataSet batch = batches.next();
            INDArray features = batch.getFeatures(0);
            INDArray labels = batch.getLabels(0);
            Map<String, INDArray> acts;
            try {
                // the batch's features mask holds its document ids when the run isolates documents
                graph.setLayerMaskArrays(batch.getFeaturesMaskArrays(), null);
                acts = graph.feedForward(new INDArray[]{features}, false, false);
            } finally {
                graph.clearLayerMaskArrays();
            }
            INDArray headInput = acts.get(depths > 0 ? GraphNames.LM_HEAD_INPUT : GraphNames.NORM_F);

            MtpLossReport report = lossLayer.evaluate(headInput, labels);
            for (int d = 0; d <= depths; d++) {
                long denominator = d == 0 || lossSettings.getNormalization() == MtpLossNormalization.MAIN_LABEL_COUNT
                        ? report.labelCounts()[0] : report.labelCounts()[d];
                ceSum[d] += report.depthLosses()[d] * Math.max(denominator, 1);
                targetCount[d] += report.labelCounts()[d];
            }

            long b = features.size(0);
            int t = (int) features.size(2);
            long[][][] predictions = new long[depths + 1][][];
            for (int d = 0; d <= depths; d++) {
                INDArray hidden = headInput.get(NDArrayIndex.all(), NDArrayIndex.interval((long) d * h, (long) (d + 1) * h),
                        NDArrayIndex.all()).permute(0, 2, 1).dup('c').reshape(b * t, h);
                INDArray argmax = Nd4j.argMax(hidden.mmul(weight.transpose()), 1);
                predictions[d] = toRows(argmax, b, t);
            }
            long[][] lab = toRows(labels.get(NDArrayIndex.all(), NDArrayIndex.point(0), NDArrayIndex.all()), b, t);
            long[][] doc = labels.size(1) > 1
                    ? toRows(labels.get(NDArrayIndex.all(), NDArrayIndex.point(1), NDArrayIndex.all()), b, t) : null;
            for (int row = 0; row < b; row++) {
                for (int pos = 0; pos < t; pos++) {
                    tokens++;
                    boolean joint = true;
                    for (int d = 0; d <= depths; d++) {
                        int ahead = pos + d;
                        boolean valid = ahead < t && lab[row][ahead] >= 0 && (doc == null || doc[row][ahead] == doc[row][pos]);
                        if (!valid) {
                            break;
                        }
                        if (predictions[d][row][pos] == lab[row][ahead]) {
                            labelHits[d]++;
                        }
                        boolean agrees = predictions[d][row][pos] == predictions[0][row][ahead];
                        mainValid[d]++;
                        if (agrees) {
                            mainHits[d]++;
                        }
                        joint &= agrees;
                        jointValid[d]++;
                        if (joint) {
                            jointHits[d]++;
                        }
                    }
                }
            }
            ExpertLoad.drain(graph).forEach((layer, counts) -> ExpertCounts.addInto(expertCounts, layer, counts));
        }

        double[] loss = new double[depths + 1];
        double[] accLabels = new double[depths + 1];
        double[] accMain = new double[depths + 1];
        double acceptLength = 1.0;
        for (int d = 0; d <= depths; d++) {
            loss[d] = ceSum[d] / Math.max(targetCount[d], 1);
            accLabels[d] = labelHits[d] / (double) Math.max(targetCount[d], 1);
            accMain[d] = mainHits[d] / (double) Math.max(mainValid[d], 1);
            if (d > 0) {
                acceptLength += jointHits[d] / (double) Math.max(jointValid[d], 1);
            }
        }
        Map<String, double[]> load = new LinkedHashMap<>();
        expertCounts.forEach((layer, counts) -> {
            long total = 0;
            for (long c : counts) {
                total += c;
            }
            double[] fractions = new double[counts.length];
            for (int e = 0; e < counts.length; e++) {
                fractions[e] = counts[e] / (double) Math.max(total, 1);
            }
            load.put(layer, fractions);
        });
        return new ValidationReport(loss, accLabels, accMain, acceptLength, load, tokens);
    }

    private static long[][] toRows(INDArray values, long b, int t) {
        long[] flat = values.castTo(org.nd4j.linalg.api.buffer.DataType.LONG).dup('c').data().asLong();
        long[][] rows = new long[(int) b][t];
        for (int r = 0; r < b; r++) {
            System.arraycopy(flat, r * t, rows[r], 0, t);
        }
        return rows;
    }
}
