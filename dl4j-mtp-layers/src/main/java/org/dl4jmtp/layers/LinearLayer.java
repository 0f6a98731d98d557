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

/**
 * A bias-free linear map of the features of [mb, nIn, T] with an HF-layout weight [nOut, nIn] under the key
 * {@code weight} (e.g. an MTP depth's {@code eh_proj}), initialised N(0, std²).
 */
@Data
@EqualsAndHashCode(callSuper = true)
public class LinearLayer extends SequenceSameDiffLayer {

    public static final String WEIGHT = "weight";

    private long nIn;
    private long nOut;
    private double std;

    private LinearLayer() {
        // for JSON deserialisation
    }

    protected LinearLayer(Builder builder) {
        super(builder);
        if (builder.nIn <= 0 || builder.nOut <= 0) {
            throw new IllegalArgumentException("LinearLayer sizes must be positive, got nIn=" + builder.nIn
                    + ", nOut=" + builder.nOut);
        }
        this.nIn = builder.nIn;
        this.nOut = builder.nOut;
        this.std = builder.std;
    }

    @Override
    public long inputSize() {
        return nIn;
    }

    @Override
    public long outputSize() {
        return nOut;
    }

    @Override
    public void defineParameters(SDLayerParams params) {
        params.addWeightParam(WEIGHT, nOut, nIn);
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params) {
        ParamInit.normal(params.get(WEIGHT), std);
    }

    /** The explicit runtime; {@link #defineSequence} is the reference definition it is tested against. */
    @Override
    protected ExplicitSequenceLayer explicitRuntime(NeuralNetConfiguration conf, DataType dataType) {
        return new ExplicitSequenceLayer.Linear(conf, dataType, WEIGHT);
    }

    @Override
    protected SDVariable defineSequence(SameDiff sd, SDVariable x, Map<String, SDVariable> params) {
        return M21Workarounds.linear3d(sd, x, params.get(WEIGHT), nIn, nOut);
    }

    public static class Builder extends SequenceSameDiffLayer.RuntimeBuilder<Builder> {
        private long nIn;
        private long nOut;
        private double std = 0.02;

        public Builder nIn(long nIn) {
            this.nIn = nIn;
            return this;
        }

        public Builder nOut(long nOut) {
            this.nOut = nOut;
            return this;
        }

        /** Standard deviation of the initial weights (HF {@code initializer_range}). */
        public Builder std(double std) {
            this.std = std;
            return this;
        }

        @Override
        @SuppressWarnings("unchecked")
        public LinearLayer build() {
            return new LinearLayer(this);
        }
    }
}
