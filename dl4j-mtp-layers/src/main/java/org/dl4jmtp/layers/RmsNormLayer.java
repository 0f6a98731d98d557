package org.dl4jmtp.layers;

import lombok.Data;
import lombok.EqualsAndHashCode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/** RMSNorm over the features of [mb, size, T]: {@code weight ⊙ x / sqrt(mean(x²) + eps)} (e.g. {@code backbone.norm_f}). */
@Data
@EqualsAndHashCode(callSuper = true)
public class RmsNormLayer extends SequenceSameDiffLayer {

    public static final String WEIGHT = "weight";

    private long size;
    private double epsilon;

    private RmsNormLayer() {
        // for JSON deserialisation
    }

    protected RmsNormLayer(Builder builder) {
        super(builder);
        if (builder.size <= 0) {
            throw new IllegalArgumentException("RmsNormLayer size must be positive, got " + builder.size);
        }
        this.size = builder.size;
        this.epsilon = builder.epsilon;
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
    public void defineParameters(SDLayerParams params) {
        params.addWeightParam(WEIGHT, size);
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params) {
        params.get(WEIGHT).assign(1.0);
    }

    /** The explicit runtime; {@link #defineSequence} is the reference definition it is tested against. */
    @Override
    protected ExplicitSequenceLayer explicitRuntime(NeuralNetConfiguration conf, DataType dataType) {
        return new ExplicitSequenceLayer.RmsNorm(conf, dataType, WEIGHT, epsilon);
    }

    @Override
    protected SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params) {
        return SdMath.rmsNorm(sd, x, params.get(WEIGHT), epsilon, 3);
    }

    public static class Builder extends SequenceSameDiffLayer.RuntimeBuilder<Builder> {
        private long size;
        private double epsilon = 1e-5;

        /** Number of features normalised together. */
        public Builder size(long size) {
            this.size = size;
            return this;
        }

        /** Added to the mean square (HF {@code layer_norm_epsilon}). */
        public Builder epsilon(double epsilon) {
            this.epsilon = epsilon;
            return this;
        }

        @Override
        @SuppressWarnings("unchecked")
        public RmsNormLayer build() {
            return new RmsNormLayer(this);
        }
    }
}
