package org.dl4jmtp.model;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.misc.FrozenLayer;
import org.dl4jmtp.losses.MtpLossLayer;

import java.util.Map;

/**
 * Training the MTP depths on a frozen model ("MTP healing", {@code train --train-only mtp}): every layer outside
 * {@code mtp.*} becomes a DL4J {@link FrozenLayer}, whose parameters have no updater state and no regularisation and
 * which DL4J's ComputationGraph leaves out of backprop entirely (it computes neither parameter gradients nor an input
 * gradient for it, so the backbone's backward pass is skipped); {@code lm_head.weight} stays in its loss layer, frozen
 * there ({@link MtpLossLayer#isFrozenWeight()}), because the MTP losses backpropagate through it. Frozen layers run
 * their forward pass in inference mode, which computes the same values.
 */
public final class MtpOnlyTraining {

    private static final String MTP_PREFIX = "mtp.";

    private MtpOnlyTraining() {
    }

    /**
     * Freezes everything outside {@code mtp.*} in {@code conf} (before the graph is built from it).
     *
     * @throws IllegalArgumentException if the configuration has no MTP layer (nothing would train)
     */
    public static void freezeAllButMtp(ComputationGraphConfiguration conf) {
        boolean hasMtp = false;
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            if (!(e.getValue() instanceof LayerVertex)) {
                continue;
            }
            LayerVertex vertex = (LayerVertex) e.getValue();
            Layer layer = vertex.getLayerConf().getLayer();
            if (e.getKey().startsWith(MTP_PREFIX)) {
                hasMtp = true;
            } else if (layer instanceof MtpLossLayer) {
                ((MtpLossLayer) layer).setFrozenWeight(true);
            } else if (!(layer instanceof FrozenLayer)) {
                FrozenLayer frozen = new FrozenLayer(layer);
                frozen.setLayerName(layer.getLayerName());
                vertex.getLayerConf().setLayer(frozen);
            }
        }
        if (!hasMtp) {
            throw new IllegalArgumentException("--train-only mtp: the model has no MTP depths to train"
                    + " (num_nextn_predict_layers / --mtp-depths is 0)");
        }
    }

    /** True when {@code layerName} of {@code conf} is frozen by {@link #freezeAllButMtp}. */
    public static boolean isFrozen(ComputationGraphConfiguration conf, String layerName) {
        GraphVertex vertex = conf.getVertices().get(layerName);
        return vertex instanceof LayerVertex && ((LayerVertex) vertex).getLayerConf().getLayer() instanceof FrozenLayer;
    }
}
