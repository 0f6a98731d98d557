package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;

import java.util.Objects;

/** The one place a graph's runtime is chosen: every {@link RuntimeSelectable} layer of a configuration gets it. */
public final class Runtimes {

    private Runtimes() {
    }

    /**
     * Sets {@code runtime} on every dl4j-mtp layer of {@code conf} (before the graph is built from it; a built graph
     * keeps the runtimes it was instantiated with).
     *
     * @return the number of layers set
     */
    public static int apply(ComputationGraphConfiguration conf, LayerRuntime runtime) {
        Objects.requireNonNull(runtime, "runtime");
        int set = 0;
        for (GraphVertex vertex : conf.getVertices().values()) {
            if (vertex instanceof LayerVertex
                    && ((LayerVertex) vertex).getLayerConf().getLayer() instanceof RuntimeSelectable) {
                ((RuntimeSelectable) ((LayerVertex) vertex).getLayerConf().getLayer()).setRuntime(runtime);
                set++;
            }
        }
        return set;
    }

    /** The runtime of a configuration's dl4j-mtp layers, or null if they disagree or there are none. */
    public static LayerRuntime of(ComputationGraphConfiguration conf) {
        LayerRuntime found = null;
        for (GraphVertex vertex : conf.getVertices().values()) {
            if (vertex instanceof LayerVertex
                    && ((LayerVertex) vertex).getLayerConf().getLayer() instanceof RuntimeSelectable) {
                LayerRuntime r = ((RuntimeSelectable) ((LayerVertex) vertex).getLayerConf().getLayer()).getRuntime();
                if (found != null && found != r) {
                    return null;
                }
                found = r;
            }
        }
        return found;
    }
}
