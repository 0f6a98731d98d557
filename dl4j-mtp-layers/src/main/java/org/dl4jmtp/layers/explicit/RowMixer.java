package org.dl4jmtp.layers.explicit;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/**
 * A block's mixer on token rows with a hand-written backprop. Rows are the [B, T, H] block input flattened batch-major
 * (row b·T + t); parameter and gradient maps use the block's keys ({@code mixer.<HF name>}).
 *
 * @param <S> what backprop needs from the forward pass
 */
interface RowMixer<S> {

    /** Where arrays that backprop reads are allocated (a workspace that outlives the forward pass when training). */
    interface Cache {
        INDArray createUninitialized(DataType dataType, long... shape);

        /** {@code array} itself, or a copy of it, placed in the cache's memory. */
        INDArray keep(INDArray array);
    }

    /** The mixer output rows and the forward state. */
    final class Result<S> {
        final INDArray output;
        final S state;

        Result(INDArray output, S state) {
            this.output = output;
            this.state = state;
        }
    }

    /**
     * @param x     [B·T, H] normed block input, kept by the caller for backprop
     * @param batch B (T = rows / B)
     */
    Result<S> forward(INDArray x, int batch, Cache cache);

    /**
     * Writes every parameter gradient of the mixer into {@code gradients} (views of the layer's gradient array).
     *
     * @param gradOut [B·T, H] dL/d(mixer output)
     * @return [B·T, H] dL/d(normed input)
     */
    INDArray backward(S state, INDArray gradOut, Map<String, INDArray> gradients);
}
