package org.dl4jmtp.layers;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/**
 * The live parameter views of a graph, by HF key ({@link HfStateDictAdapter#parameters}), seen through a key prefix.
 * Nothing is copied: training the graph (or loading a checkpoint into it) changes what the cached path computes.
 */
public final class ModelWeights {

    private final Map<String, INDArray> views;
    private final String prefix;

    private ModelWeights(Map<String, INDArray> views, String prefix) {
        this.views = views;
        this.prefix = prefix;
    }

    public static ModelWeights of(ComputationGraph graph) {
        return new ModelWeights(HfStateDictAdapter.parameters(graph), "");
    }

    /** The same views under {@code prefix + more} (e.g. {@code backbone.layers.3.} then {@code mixer.}). */
    public ModelWeights under(String more) {
        return new ModelWeights(views, prefix + more);
    }

    /** The view of {@code prefix + key}, which must exist. */
    public INDArray get(String key) {
        INDArray v = views.get(prefix + key);
        if (v == null) {
            throw new IllegalArgumentException("The model has no parameter " + prefix + key);
        }
        return v;
    }

    /** The view of {@code prefix + key}, or null if the model has no such parameter (optional biases). */
    public INDArray optional(String key) {
        return views.get(prefix + key);
    }

    /** The view of {@code prefix + key} as a vector [n] (DL4J may store 1-D parameters as [1, n]). */
    public INDArray vector(String key) {
        INDArray v = get(key);
        return v.rank() == 1 ? v : v.reshape(v.length());
    }

    /** {@link #vector} of an optional parameter, or null. */
    public INDArray optionalVector(String key) {
        INDArray v = optional(key);
        return v == null || v.rank() == 1 ? v : v.reshape(v.length());
    }

    /** The graph's data type (all parameters share it). */
    public DataType dataType() {
        return views.values().iterator().next().dataType();
    }
}
