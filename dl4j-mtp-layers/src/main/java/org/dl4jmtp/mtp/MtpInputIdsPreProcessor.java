package org.dl4jmtp.mtp;

import lombok.Data;
import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Token ids [mb, 1, T] → [mb, 1, (1+D)·T] in front of the shared embedding layer: the ids, then the ids rolled left by
 * 1, 2, …, D with the vacated tail set to token id 0 (docs/model.md, "MTP depths": depth d embeds x[t+d]). Concatenated
 * along time so
 * that ONE embedding layer embeds the main and every MTP input: the embedding is shared without copies and its
 * gradient sums over all depths. A preprocessor rather than a layer because the embedding layer returns no input
 * gradient, which DL4J requires from every layer before it.
 */
@Data
public class MtpInputIdsPreProcessor implements InputPreProcessor {

    private int depths;

    public MtpInputIdsPreProcessor() {
        // for JSON deserialisation
    }

    public MtpInputIdsPreProcessor(int depths) {
        this.depths = depths;
    }

    @Override
    public INDArray preProcess(INDArray ids, int miniBatchSize, LayerWorkspaceMgr workspaceMgr) {
        if (ids.rank() != 3 || ids.size(1) != 1) {
            throw new IllegalArgumentException("Token ids must be [mb, 1, T], got " + java.util.Arrays.toString(ids.shape()));
        }
        long t = ids.size(2);
        INDArray out = workspaceMgr.create(ArrayType.ACTIVATIONS, ids.dataType(), new long[]{ids.size(0), 1, (1L + depths) * t}, 'c');
        for (int d = 0; d <= depths; d++) {
            long start = d * t;
            if (d < t) {
                out.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(start, start + t - d))
                        .assign(ids.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(d, t)));
            }
        }
        return out;   // create() zero-fills, so every vacated tail slot holds token id 0
    }

    @Override
    public INDArray backprop(INDArray output, int miniBatchSize, LayerWorkspaceMgr workspaceMgr) {
        return null;  // token ids have no gradient
    }

    @Override
    public MtpInputIdsPreProcessor clone() {
        return new MtpInputIdsPreProcessor(depths);
    }

    @Override
    public InputType getOutputType(InputType inputType) {
        long t = inputType instanceof InputType.InputTypeRecurrent
                ? ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength() : -1;
        return InputType.recurrent(1, t > 0 ? (1L + depths) * t : -1, RNNFormat.NCW);
    }

    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArray(INDArray maskArray, MaskState currentMaskState, int minibatchSize) {
        if (maskArray == null) {
            return new Pair<>(null, currentMaskState);
        }
        // the document ids [mb, T] (docs/model.md, "Packed documents") of the positions, once per part: every part
        // is at the positions of the main ids (the embedding keeps each part's tokens inside those documents)
        if (maskArray.rank() != 2) {
            throw new IllegalArgumentException("Document ids must be [mb, T], got " + java.util.Arrays.toString(maskArray.shape()));
        }
        return new Pair<>(Nd4j.tile(maskArray, 1, 1 + depths), currentMaskState);
    }
}
