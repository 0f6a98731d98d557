package org.dl4jmtp.io;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.layers.ParamKeys;
import org.dl4jmtp.mtp.MtpDepthLayer;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * HF state dict ↔ graph parameters, in one place. The mapping is mechanical (see the README's table):
 * <ul>
 *   <li>parameter keys are HF names with '_' written as '-' ({@link ParamKeys});</li>
 *   <li>{@code <layer name>.<param key>} for the backbone blocks, {@code backbone.norm_f} and {@code lm_head};</li>
 *   <li>{@code backbone.embeddings} param {@code W} ↔ {@code backbone.embeddings.weight};</li>
 *   <li>{@code mtp.depth.{p}} param {@code {s}.<name>} ↔ {@code mtp.layers.{p·P+s}.<name>} (P = MTP pattern length).</li>
 * </ul>
 * Checkpoint key variants accepted on load (docs/parameters.md, "Loading and saving"): {@code model.} for
 * {@code backbone.},
 * {@code embed_tokens} for {@code embeddings}, {@code norm} for {@code norm_f}, a {@code language_model.} prefix, and
 * fused 3-D experts {@code experts.up_proj [E, I, d]} / {@code experts.down_proj [E, d, I]}.
 */
public final class HfStateDictAdapter {

    private static final Pattern FUSED_EXPERTS = Pattern.compile("(.*\\.mixer\\.experts)\\.(up_proj|down_proj)(\\.weight)?");
    private static final String MTP_PREFIX = "mtp.";

    private HfStateDictAdapter() {
    }

    /** The graph's parameter views keyed by HF name, sorted by key. Views: assigning to them changes the graph. */
    public static Map<String, INDArray> parameters(ComputationGraph graph) {
        Map<String, INDArray> out = new TreeMap<>();
        dl4jVariableNames(graph).forEach((hf, variable) -> out.put(hf, graph.paramTable().get(variable)));
        return out;
    }

    /**
     * HF key → DL4J variable name ({@code layerName_paramKey}, the key of {@code graph.paramTable()} and of
     * {@code Gradient.gradientForVariable()}), sorted by HF key.
     */
    public static Map<String, String> dl4jVariableNames(ComputationGraph graph) {
        Map<String, String> out = new TreeMap<>();
        for (Layer layer : graph.getLayers()) {
            String name = layer.conf().getLayer().getLayerName();
            int patternLength = layer.conf().getLayer() instanceof MtpDepthLayer
                    ? ((MtpDepthLayer) layer.conf().getLayer()).sublayerTypes().size() : 0;
            for (String key : layer.paramTable().keySet()) {
                out.put(hfKey(name, key, patternLength), name + "_" + key);
            }
        }
        return out;
    }

    /** The HF key of parameter {@code paramKey} of layer {@code layerName}. */
    public static String hfKey(String layerName, String paramKey, int mtpPatternLength) {
        if (GraphNames.EMBEDDINGS.equals(layerName)) {
            return "backbone.embeddings.weight";
        }
        if (layerName.startsWith(GraphNames.MTP_DEPTH_PREFIX)) {
            int physical = Integer.parseInt(layerName.substring(GraphNames.MTP_DEPTH_PREFIX.length()));
            int dot = paramKey.indexOf('.');
            int sub = Integer.parseInt(paramKey.substring(0, dot));
            return "mtp.layers." + (physical * mtpPatternLength + sub) + ParamKeys.toHf(paramKey.substring(dot));
        }
        return layerName + "." + ParamKeys.toHf(paramKey);
    }

    /**
     * Copies a checkpoint's tensors into the graph, strictly: every graph parameter must be present with its shape and
     * no other tensor may be. With {@code allowMissingMtp}, a checkpoint without any {@code mtp.*} tensor is accepted
     * and the MTP parameters keep their fresh initialisation. Keys and shapes are checked from the headers before any
     * parameter changes; then each tensor streams from the file into its parameter view
     * ({@link SafetensorsCheckpoint#readInto}), so neither the file nor a second copy of the weights is held.
     *
     * @throws IllegalArgumentException listing every missing, unexpected and misshaped key
     */
    public static void load(ComputationGraph graph, SafetensorsCheckpoint checkpoint, boolean allowMissingMtp) {
        Map<String, INDArray> targets = parameters(graph);
        Map<String, TensorSource> tensors = canonicalSources(checkpoint);
        boolean checkpointHasMtp = tensors.keySet().stream().anyMatch(k -> k.startsWith(MTP_PREFIX));
        if (allowMissingMtp && !checkpointHasMtp) {
            targets.keySet().removeIf(k -> k.startsWith(MTP_PREFIX));
        }
        TreeSet<String> missing = new TreeSet<>(targets.keySet());
        missing.removeAll(tensors.keySet());
        TreeSet<String> unexpected = new TreeSet<>(tensors.keySet());
        unexpected.removeAll(targets.keySet());
        List<String> misshaped = new ArrayList<>();
        for (Map.Entry<String, INDArray> e : targets.entrySet()) {
            TensorSource tensor = tensors.get(e.getKey());
            if (tensor != null && !Arrays.equals(tensor.shape(), e.getValue().shape())) {
                misshaped.add(e.getKey() + " " + Arrays.toString(tensor.shape()) + " (expected "
                        + Arrays.toString(e.getValue().shape()) + ")");
            }
        }
        if (!missing.isEmpty() || !unexpected.isEmpty() || !misshaped.isEmpty()) {
            StringBuilder msg = new StringBuilder("Checkpoint " + checkpoint.path() + " does not match the model:");
            if (!missing.isEmpty()) {
                msg.append("\n  missing keys (").append(missing.size()).append("): ").append(missing);
            }
            if (!unexpected.isEmpty()) {
                msg.append("\n  unexpected keys (").append(unexpected.size()).append("): ").append(unexpected);
            }
            if (!misshaped.isEmpty()) {
                msg.append("\n  shape mismatches (").append(misshaped.size()).append("): ").append(misshaped);
            }
            if (!checkpointHasMtp && !allowMissingMtp && missing.stream().anyMatch(k -> k.startsWith(MTP_PREFIX))) {
                msg.append("\n  (the checkpoint has no MTP weights: load it with MTP disabled, or allow missing MTP"
                        + " weights to start the MTP depths from a fresh initialisation)");
            }
            throw new IllegalArgumentException(msg.toString());
        }
        // tensor by tensor straight into the parameter views: no second copy of the weights is ever held
        for (Map.Entry<String, INDArray> e : targets.entrySet()) {
            TensorSource source = tensors.get(e.getKey());
            checkpoint.readInto(source.key(), source.firstElement(), e.getValue());
        }
    }

    /** The graph's parameters in HF layout (copies), optionally without the {@code mtp.*} tensors. */
    public static Map<String, INDArray> stateDict(ComputationGraph graph, boolean includeMtp) {
        Map<String, INDArray> out = new LinkedHashMap<>();
        for (Map.Entry<String, INDArray> e : parameters(graph).entrySet()) {
            if (includeMtp || !e.getKey().startsWith(MTP_PREFIX)) {
                out.put(e.getKey(), e.getValue().dup('c'));
            }
        }
        return out;
    }

    /**
     * The dtype each tensor has in the checkpoint, under the canonical HF keys {@link #load} uses (a fused 3-D expert
     * tensor gives its dtype to each expert it is split into). Reads headers only.
     */
    public static Map<String, SafetensorsDType> sourceDTypes(SafetensorsCheckpoint checkpoint) {
        Map<String, SafetensorsDType> out = new TreeMap<>();
        for (String key : checkpoint.keys()) {
            String canonical = canonicalKey(key);
            Matcher fused = FUSED_EXPERTS.matcher(canonical);
            SafetensorsTensorInfo info = checkpoint.info(key);
            if (fused.matches() && info.shape().length == 3) {
                for (int j = 0; j < info.shape()[0]; j++) {
                    out.put(fused.group(1) + "." + j + "." + fused.group(2) + ".weight", info.dtype());
                }
            } else {
                out.put(canonical, info.dtype());
            }
        }
        return out;
    }

    /**
     * Where a canonical tensor's data is: checkpoint key {@code key}, elements from {@code firstElement} on (a slice
     * of a fused expert tensor, or the whole tensor from 0), of shape {@code shape}.
     */
    record TensorSource(String key, long firstElement, long[] shape) {
    }

    /**
     * Every tensor of the checkpoint under its canonical HF key (variants resolved, fused experts split into one
     * source per expert), from the headers alone.
     */
    static Map<String, TensorSource> canonicalSources(SafetensorsCheckpoint checkpoint) {
        Map<String, TensorSource> out = new TreeMap<>();
        for (String key : checkpoint.keys()) {
            String canonical = canonicalKey(key);
            Matcher fused = FUSED_EXPERTS.matcher(canonical);
            long[] shape = checkpoint.info(key).shape();
            if (fused.matches() && shape.length == 3) {
                long[] expertShape = Arrays.copyOfRange(shape, 1, 3);
                for (int j = 0; j < shape[0]; j++) {
                    putUnique(out, fused.group(1) + "." + j + "." + fused.group(2) + ".weight",
                            new TensorSource(key, j * expertShape[0] * expertShape[1], expertShape), key);
                }
            } else {
                putUnique(out, canonical, new TensorSource(key, 0, shape), key);
            }
        }
        return out;
    }

    private static <T> void putUnique(Map<String, T> out, String canonical, T tensor, String original) {
        if (out.put(canonical, tensor) != null) {
            throw new IllegalArgumentException("Checkpoint holds two tensors for " + canonical + " (one is " + original + ")");
        }
    }

    /** Resolves the key variants of docs/parameters.md, "Loading and saving" to the hub names. */
    static String canonicalKey(String key) {
        String k = key.startsWith("language_model.") ? key.substring("language_model.".length()) : key;
        if (k.startsWith("model.")) {
            k = "backbone." + k.substring("model.".length());
        }
        if (k.equals("backbone.embed_tokens.weight")) {
            return "backbone.embeddings.weight";
        }
        if (k.equals("backbone.norm.weight")) {
            return "backbone.norm_f.weight";
        }
        return k;
    }
}
