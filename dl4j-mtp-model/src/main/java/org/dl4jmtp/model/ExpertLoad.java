package org.dl4jmtp.model;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.layers.FrozenLayer;
import org.dl4jmtp.block.NemotronV3Block;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.moe.ExpertBiasBalancing;
import org.dl4jmtp.moe.ExpertCounts;
import org.dl4jmtp.moe.ExpertLoadSource;
import org.dl4jmtp.moe.MoeMixer;
import org.dl4jmtp.mtp.MtpDepthLayer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The expert loads of a NemotronV3 graph's MoE layers, by HF layer name ({@code backbone.layers.{i}},
 * {@code mtp.layers.{i}}): the tokens routed to each expert by the forward passes since the previous call, summed over
 * the replicas of a {@link DataParallelGraph} and over the D uses of a weight-tied MTP depth; and the bias update of
 * auxiliary-loss-free balancing ({@link ExpertBiasBalancing}) applied from them.
 */
public final class ExpertLoad {

    private ExpertLoad() {
    }

    /**
     * The counts of every MoE layer since the previous call (then forgotten), by HF layer name in graph order; frozen
     * layers ({@code train --train-only}) are counted too.
     */
    public static Map<String, long[]> drain(ComputationGraph graph) {
        Map<String, long[]> sums = new LinkedHashMap<>();
        for (ComputationGraph g : withReplicas(graph)) {
            for (Layer layer : g.getLayers()) {
                Layer inner = unwrap(layer);
                if (inner instanceof ExpertLoadSource) {
                    ((ExpertLoadSource) inner).drainExpertCounts().forEach((prefix, counts) ->
                            ExpertCounts.addInto(sums, hfLayerName(inner, prefix), counts));
                }
            }
        }
        return sums;
    }

    /**
     * One balancing update of every trainable MoE layer's correction bias from the counts of {@link #drain}: layers
     * frozen as a whole ({@code train --train-only}) keep theirs. The bias is a parameter view, so checkpoints, the HF
     * export and the replicas (which share the parameter array) see the update.
     *
     * @return the HF layer names whose bias was updated
     */
    public static List<String> balance(ComputationGraph graph, Map<String, long[]> counts, double rate) {
        List<String> updated = new ArrayList<>();
        for (Layer layer : graph.getLayers()) {
            if (layer instanceof FrozenLayer || !(layer instanceof ExpertLoadSource)) {
                continue;
            }
            for (String key : layer.paramTable().keySet()) {
                if (!key.endsWith(NemotronV3Block.MIXER_PREFIX + MoeMixer.CORRECTION_BIAS)) {
                    continue;
                }
                String prefix = key.substring(0, key.length() - (NemotronV3Block.MIXER_PREFIX + MoeMixer.CORRECTION_BIAS).length());
                String name = hfLayerName(layer, prefix);
                long[] c = counts.get(name);
                if (c != null) {
                    ExpertBiasBalancing.update(layer.getParam(key), c, rate);
                    updated.add(name);
                }
            }
        }
        return updated;
    }

    /** Discards the counts of every graph (e.g. before a forward pass whose counts must not mix with earlier ones). */
    public static void discard(ComputationGraph graph) {
        drain(graph);
    }

    /** The HF name of the block with key prefix {@code prefix} in {@code layer} (e.g. {@code mtp.layers.1}). */
    private static String hfLayerName(Layer layer, String prefix) {
        int pattern = layer.conf().getLayer() instanceof MtpDepthLayer
                ? ((MtpDepthLayer) layer.conf().getLayer()).sublayerTypes().size() : 0;
        String normKey = HfStateDictAdapter.hfKey(layer.conf().getLayer().getLayerName(), prefix + NemotronV3Block.NORM, pattern);
        return normKey.substring(0, normKey.length() - ("." + NemotronV3Block.NORM).length());
    }

    private static Layer unwrap(Layer layer) {
        return layer instanceof FrozenLayer ? ((FrozenLayer) layer).getInsideLayer() : layer;
    }

    private static List<ComputationGraph> withReplicas(ComputationGraph graph) {
        List<ComputationGraph> all = new ArrayList<>();
        all.add(graph);
        if (graph instanceof DataParallelGraph) {
            all.addAll(((DataParallelGraph) graph).replicaGraphs());
        }
        return all;
    }
}
