package org.dl4jmtp.losses;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Evaluates {@link MtpLossMath} for given head input, labels and head weight, returning every per-depth loss and count
 * (ComputationGraph itself only exposes the summed score). Built once per layer configuration and reused.
 */
public final class MtpLossEvaluator {

    private final SameDiff sd;
    private final List<String> outputs = new ArrayList<>();
    private final int depths;
    private final double lossScalingFactor;

    public MtpLossEvaluator(MtpLossLayer settings, DataType dataType) {
        this.depths = settings.getDepths();
        this.lossScalingFactor = settings.getLossScalingFactor();
        sd = SameDiff.create();
        int channels = settings.isDocumentIdsInLabels() ? 2 : 1;
        SDVariable input = sd.placeHolder("input", dataType, -1, (long) (1 + depths) * settings.getHiddenSize(), -1);
        SDVariable labels = sd.placeHolder("labels", dataType, -1, channels, -1);
        SDVariable weight = sd.placeHolder("weight", dataType, settings.getVocabSize(), settings.getHiddenSize());
        MtpLossMath.Outputs loss = MtpLossMath.define(sd, input, labels, weight, settings);
        outputs.add(loss.total.name());
        for (int d = 0; d <= depths; d++) {
            outputs.add(loss.depthLosses[d].name());
            outputs.add(loss.labelCounts[d].name());
        }
    }

    public MtpLossReport evaluate(INDArray headInput, INDArray labels, INDArray weight) {
        Map<String, INDArray> placeholders = new HashMap<>();
        placeholders.put("input", headInput);
        placeholders.put("labels", labels.castTo(headInput.dataType()));
        placeholders.put("weight", weight);
        Map<String, INDArray> values = sd.output(placeholders, outputs.toArray(new String[0]));
        double[] losses = new double[depths + 1];
        long[] counts = new long[depths + 1];
        for (int d = 0; d <= depths; d++) {
            losses[d] = values.get(outputs.get(1 + 2 * d)).getDouble(0);
            counts[d] = Math.round(values.get(outputs.get(2 + 2 * d)).getDouble(0));
        }
        return new MtpLossReport(values.get(outputs.get(0)).getDouble(0), losses, counts, lossScalingFactor);
    }
}
