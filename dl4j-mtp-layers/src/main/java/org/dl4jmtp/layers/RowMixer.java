package org.dl4jmtp.layers;

import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.attention.AttentionConfig;
import org.dl4jmtp.attention.CausalAttention;
import org.dl4jmtp.layers.rows.ColumnSums;
import org.dl4jmtp.mamba2.ChunkedMamba2;
import org.dl4jmtp.mamba2.Mamba2Config;
import org.dl4jmtp.mlp.MlpConfig;
import org.dl4jmtp.mlp.Relu2Mlp;
import org.dl4jmtp.moe.MoeConfig;
import org.dl4jmtp.moe.SparseMoe;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Map;

/**
 * A block's mixer on token rows with a explicit backprop. Rows are the [B, T, H] block input flattened batch-major
 * (row b·T + t); parameter and gradient maps use the block's keys ({@code mixer.<HF name>}, the prefix).
 *
 * @param <S> what backprop needs from the forward pass
 */
public abstract class RowMixer<S> {

    /** Where arrays that backprop reads are allocated (a workspace that outlives the forward pass when training). */
    public interface Cache {
        INDArray createUninitialized(DataType dataType, long... shape);

        /** {@code array} itself, or a copy of it, placed in the cache's memory. */
        INDArray keep(INDArray array);

        /** A c-order copy of {@code view} (any layout) in the cache's memory: one copy where keep(dup) makes two. */
        default INDArray copy(INDArray view) {
            return createUninitialized(view.dataType(), view.shape()).assign(view);
        }

        /**
         * DL4J's ACTIVATIONS workspace, which stays open until the training step's backprop has run: where a training
         * forward pass keeps what its backprop reads.
         */
        public static Cache inActivations(LayerWorkspaceMgr workspaceMgr) {
            return new Cache() {
                @Override
                public INDArray createUninitialized(DataType dataType, long... shape) {
                    return workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, shape, 'c');
                }

                @Override
                public INDArray keep(INDArray array) {
                    return workspaceMgr.leverageTo(ArrayType.ACTIVATIONS, array);
                }
            };
        }

        /** Everything in the current scope: inference, or a forward pass recomputed inside backprop. */
        Cache CURRENT_SCOPE = new Cache() {
            @Override
            public INDArray createUninitialized(DataType dataType, long... shape) {
                return Nd4j.createUninitialized(dataType, shape, 'c');
            }

            @Override
            public INDArray keep(INDArray array) {
                return array;
            }
        };
    }

    /** The mixer output rows and the forward state. */
    public static final class Result<S> {
        public final INDArray output;
        public final S state;

        public Result(INDArray output, S state) {
            this.output = output;
            this.state = state;
        }
    }

    /** The mixer {@code config} describes, its keys below {@code prefix} (e.g. {@code "mixer."}). */
    @SuppressWarnings("unchecked")
    public static RowMixer<Object> of(MixerConfig config, Map<String, INDArray> params, String prefix) {
        RowMixer<?> mixer;
        if (config instanceof Mamba2Config) {
            mixer = new ChunkedMamba2((Mamba2Config) config, params, prefix);
        } else if (config instanceof AttentionConfig) {
            mixer = new CausalAttention((AttentionConfig) config, params, prefix);
        } else if (config instanceof MlpConfig) {
            mixer = new Relu2Mlp((MlpConfig) config, params, prefix);
        } else if (config instanceof MoeConfig) {
            mixer = new SparseMoe((MoeConfig) config, params, prefix);
        } else {
            throw new IllegalArgumentException("Unknown mixer configuration " + config);
        }
        return (RowMixer<Object>) mixer;
    }

    protected final Map<String, INDArray> params;
    protected final String prefix;

    public RowMixer(Map<String, INDArray> params, String prefix) {
        this.params = params;
        this.prefix = prefix;
    }

    /**
     * @param x     [B·T, H] normed block input, kept by the caller for backprop
     * @param batch B (T = rows / B)
     */
    public abstract Result<S> forward(INDArray x, int batch, Cache cache);

    /**
     * {@link #forward(INDArray, int, Cache)} with the packed documents of each row (null: one per row): a mixer that
     * looks across positions sees only its own document. Per-token mixers ignore them.
     */
    public Result<S> forward(INDArray x, int batch, Documents documents, Cache cache) {
        return forward(x, batch, cache);
    }

    /**
     * Writes every parameter gradient of the mixer into {@code gradients} (views of the layer's gradient array).
     *
     * @param gradOut [B·T, H] dL/d(mixer output)
     * @return [B·T, H] dL/d(normed input)
     */
    public abstract INDArray backward(S state, INDArray gradOut, Map<String, INDArray> gradients);

    /** The parameter {@code key} (relative to the mixer). */
    protected INDArray param(String key) {
        return params.get(prefix + key);
    }

    /** The gradient view of parameter {@code key}. */
    protected INDArray gradient(Map<String, INDArray> gradients, String key) {
        return gradients.get(prefix + key);
    }

    /** y = x·Wᵀ (+ b when the parameter exists): [n, in] → [n, out]. */
    protected INDArray linear(INDArray x, String weight, String bias) {
        NativeLimits.check(prefix + weight + " output [n, out]", x.size(0), param(weight).size(0));
        INDArray y = Nd4j.gemm(x, param(weight), false, true);
        return params.containsKey(prefix + bias) ? y.addiRowVector(param(bias)) : y;
    }

    /** Writes dW (and db) of {@link #linear}; returns dL/dx. */
    protected INDArray linearBackward(INDArray gradY, INDArray x, String weight, String bias,
                                      Map<String, INDArray> gradients) {
        Nd4j.gemm(gradY, x, gradient(gradients, weight), true, false, 1.0, 0.0);
        if (params.containsKey(prefix + bias)) {
            gradient(gradients, bias).assign(ColumnSums.of(gradY));
        }
        return Nd4j.gemm(gradY, param(weight), false, false);
    }
}
