package org.dl4jmtp.layers;

import lombok.Data;
import lombok.EqualsAndHashCode;
import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.Map;

/**
 * [mb, F, parts·T] → [mb, F, T]: part {@link #index} of a time axis made of {@link #parts} equal segments (the split
 * that follows the shared embedding of main and MTP ids). Parameter-free; T stays dynamic.
 */
@Data
@EqualsAndHashCode(callSuper = true)
public class TimeSliceLayer extends SequenceSameDiffLayer {

    private long size;
    private int parts;
    private int index;

    private TimeSliceLayer() {
        // for JSON deserialisation
    }

    public TimeSliceLayer(String name, long size, int parts, int index) {
        if (index < 0 || index >= parts) {
            throw new IllegalArgumentException("TimeSliceLayer index " + index + " outside [0, " + parts + ")");
        }
        this.size = size;
        this.parts = parts;
        this.index = index;
        setLayerName(name);
    }

    @Override
    public long inputSize() {
        return size;
    }

    @Override
    public long outputSize() {
        return size;
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        super.getOutputType(layerIndex, inputType);
        long t = ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength();
        return InputType.recurrent(size, t > 0 ? t / parts : -1, RNNFormat.NCW);
    }

    /** The document ids (docs/model.md, "Packed documents") of the part: [mb, parts·T] → [mb, T]. */
    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArray(INDArray maskArray, MaskState currentMaskState,
                                                          int minibatchSize) {
        if (maskArray == null) {
            return new Pair<>(null, currentMaskState);
        }
        if (maskArray.rank() != 2 || maskArray.size(1) % parts != 0) {
            throw new IllegalArgumentException("Layer " + getLayerName() + ": document ids must be [mb, " + parts
                    + "·T], got " + java.util.Arrays.toString(maskArray.shape()));
        }
        long time = maskArray.size(1) / parts;
        return new Pair<>(maskArray.get(NDArrayIndex.all(), NDArrayIndex.interval(index * time, (index + 1) * time)),
                currentMaskState);
    }

    @Override
    public void defineParameters(SDLayerParams params) {
        // no parameters
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params) {
        // no parameters
    }

    /** The explicit runtime; {@link #defineSequence} is the reference definition it is tested against. */
    @Override
    protected ExplicitSequenceLayer explicitRuntime(NeuralNetConfiguration conf, DataType dataType) {
        return new ExplicitSequenceLayer.TimeSlice(conf, dataType, parts, index);
    }

    @Override
    protected SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params) {
        SDVariable segments = SdMath.reshape(sd, x, SdMath.dims(sd, x, 0, 1), SdMath.constDims(sd, parts, -1, size));
        return sd.stridedSlice(segments, new long[]{0, index, 0, 0}, new long[]{0, index + 1, 0, 0},
                new long[]{1, 1, 1, 1}, 0b1101, 0b1101, 0, 0, 0b0010);
    }
}
