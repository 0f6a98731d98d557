package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.samediff.SameDiffLayer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.layers.rows.ColumnSums;
import org.dl4jmtp.layers.rows.RowRmsNorm;
import org.dl4jmtp.layers.rows.TokenRows;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Runtime of a {@link SequenceSameDiffLayer} whose forward pass and backprop are written out with ND4J ops. It replaces
 * the execution of the configuration's SameDiff definition (op by op, several permutes per layer), which stays the
 * reference these runtimes are tested against. Parameters and their layout are the configuration's.
 */
public abstract class ExplicitSequenceLayer extends SameDiffLayer {

    protected ExplicitSequenceLayer(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** @return the output [mb, out, T] (any layout, possibly a view) of {@code input} [mb, in, T] */
    protected abstract INDArray forward(INDArray input);

    /**
     * Writes the parameter gradients into {@code gradTable} (views of the layer's gradient array) and dL/d(input) into
     * {@code gradInput} [mb, in, T].
     */
    protected abstract void backward(INDArray input, INDArray gradOut, INDArray gradInput);

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(false);
        ((SequenceSameDiffLayer) layerConf()).validateInput(input);
        INDArray output = forward(input);
        return workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, input.dataType(), output.shape(), 'c')
                .assign(output);
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(true);
        INDArray epsOut = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, input.dataType(), input.shape(), 'c');
        backward(input, epsilon, epsOut);
        Gradient gradient = new DefaultGradient(gradients);
        if (gradTable != null) {                                        // null for a parameter-free layer
            gradTable.forEach(gradient.gradientForVariable()::put);      // parameter order (the initializer's map)
        }
        return new Pair<>(gradient, epsOut);
    }

    /** Runtime of {@code RmsNormLayer}: y = weight ⊙ x̂ over the features of each token. */
    public static class RmsNorm extends ExplicitSequenceLayer {
        private final String weightKey;
        private final double epsilon;

        public RmsNorm(NeuralNetConfiguration conf, DataType dataType, String weightKey, double epsilon) {
            super(conf, dataType);
            this.weightKey = weightKey;
            this.epsilon = epsilon;
        }

        @Override
        protected INDArray forward(INDArray input) {
            RowRmsNorm norm = RowRmsNorm.of(TokenRows.of(input), epsilon, RowMixer.Cache.CURRENT_SCOPE);
            return TokenRows.toSequence(norm.normalized.muliRowVector(getParam(weightKey)), input.size(0));
        }

        @Override
        protected void backward(INDArray input, INDArray gradOut, INDArray gradInput) {
            RowRmsNorm norm = RowRmsNorm.of(TokenRows.of(input), epsilon, RowMixer.Cache.CURRENT_SCOPE);
            INDArray gradRows = TokenRows.of(gradOut);
            gradTable.get(weightKey).assign(ColumnSums.of(gradRows.mul(norm.normalized)));
            INDArray gradRowsIn = norm.backward(gradRows.muliRowVector(getParam(weightKey)));
            gradInput.assign(TokenRows.toSequence(gradRowsIn, input.size(0)));
        }
    }

    /** Runtime of {@code LinearLayer}: y = x·Wᵀ per token, W [out, in]. */
    public static class Linear extends ExplicitSequenceLayer {
        private final String weightKey;

        public Linear(NeuralNetConfiguration conf, DataType dataType, String weightKey) {
            super(conf, dataType);
            this.weightKey = weightKey;
        }

        @Override
        protected INDArray forward(INDArray input) {
            INDArray rows = Nd4j.gemm(TokenRows.of(input), getParam(weightKey), false, true);
            return TokenRows.toSequence(rows, input.size(0));
        }

        @Override
        protected void backward(INDArray input, INDArray gradOut, INDArray gradInput) {
            INDArray gradRows = TokenRows.of(gradOut);
            Nd4j.gemm(gradRows, TokenRows.of(input), gradTable.get(weightKey), true, false, 1.0, 0.0);
            gradInput.assign(TokenRows.toSequence(Nd4j.gemm(gradRows, getParam(weightKey), false, false), input.size(0)));
        }
    }

    /** Runtime of {@code TimeSliceLayer}: part {@code index} of {@code parts} equal segments of the time axis. */
    public static class TimeSlice extends ExplicitSequenceLayer {
        private final int parts;
        private final int index;

        public TimeSlice(NeuralNetConfiguration conf, DataType dataType, int parts, int index) {
            super(conf, dataType);
            this.parts = parts;
            this.index = index;
        }

        @Override
        protected INDArray forward(INDArray input) {
            return input.get(NDArrayIndex.all(), NDArrayIndex.all(), segment(input));
        }

        @Override
        protected void backward(INDArray input, INDArray gradOut, INDArray gradInput) {
            gradInput.assign(0);
            gradInput.get(NDArrayIndex.all(), NDArrayIndex.all(), segment(input)).assign(gradOut);
        }

        private INDArrayIndex segment(INDArray input) {
            long total = input.size(2);
            if (total % parts != 0) {
                throw new IllegalArgumentException("Layer " + layerConf().getLayerName() + " (TimeSliceLayer) splits "
                        + "the time axis into " + parts + " equal parts, but its input has " + total + " steps");
            }
            long t = total / parts;
            return NDArrayIndex.interval(index * t, (index + 1) * t);
        }
    }
}
