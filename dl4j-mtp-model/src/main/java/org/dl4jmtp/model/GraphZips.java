package org.dl4jmtp.model;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.graph.MergeVertex;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.dl4jmtp.block.BlockConfig;
import org.dl4jmtp.block.NemotronV3BlockLayer;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.graph.DocumentMergeVertex;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.layers.RuntimeSelectable;
import org.dl4jmtp.layers.TokenEmbeddingLayer;
import org.dl4jmtp.mtp.MtpDepthLayer;
import org.dl4jmtp.mtp.MtpInputIdsPreProcessor;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.nd4j.shade.jackson.databind.node.ArrayNode;
import org.nd4j.shade.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

/**
 * Restores ModelSerializer zips of a NemotronV3 graph, including zips written by earlier versions of dl4j-mtp, and
 * chooses the runtime of the restored layers.
 *
 * <p>Earlier versions stored two block configurations that are now one ({@link NemotronV3BlockLayer}):
 * {@code org.dl4jmtp.layers.explicit.ExplicitBlockLayer} (a DL4J {@code BaseLayer}: its updater under
 * {@code iupdater}, plus activation and weight-init fields that a block never used) and
 * {@code org.dl4jmtp.layers.NemotronV3BlockLayer}. Both had the parameter layout of the block's SameDiff definition,
 * so only the configuration JSON is rewritten; parameters and updater state are read as stored. Blocks and MTP depths
 * also stored the model's whole HF config; they now store the few settings each block needs ({@link BlockConfig}),
 * derived from it on restore.
 */
public final class GraphZips {

    private static final String CONFIGURATION = "configuration.json";
    private static final String BLOCK = NemotronV3BlockLayer.class.getName();
    /** Old class name → current class name. */
    private static final Map<String, String> MOVED = Map.of(
            "org.dl4jmtp.layers.explicit.ExplicitBlockLayer", BLOCK,
            "org.dl4jmtp.layers.NemotronV3BlockLayer", BLOCK);
    /** Fields of the old BaseLayer-based block that the block configuration does not have. */
    private static final List<String> BASE_LAYER_ONLY = List.of("activationFn", "biasInit", "gainInit", "weightInitFn",
            "weightNoise");

    private GraphZips() {
    }

    /**
     * @param loadUpdater also restore the updater state (to continue training)
     * @param runtime     the runtime of every dl4j-mtp layer, or null to keep the one stored (zips written before the
     *                    runtime existed run {@link LayerRuntime#EXPLICIT})
     */
    public static ComputationGraph restore(Path zip, boolean loadUpdater, LayerRuntime runtime) throws IOException {
        String stored;
        try (ZipFile file = new ZipFile(zip.toFile())) {
            ZipEntry entry = file.getEntry(CONFIGURATION);
            if (entry == null) {
                throw new IOException(zip + " is not a ModelSerializer zip: it has no " + CONFIGURATION);
            }
            try (InputStream in = file.getInputStream(entry)) {
                stored = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            }
        }
        String current = upgrade(stored, runtime);
        if (current.equals(stored)) {
            return ModelSerializer.restoreComputationGraph(zip.toFile(), loadUpdater);
        }
        Path copy = Files.createTempFile("dl4jmtp-restore-", ".zip");
        try {
            copyReplacing(zip, copy, current);
            return ModelSerializer.restoreComputationGraph(copy.toFile(), loadUpdater);
        } finally {
            Files.deleteIfExists(copy);
        }
    }

    /** The configuration JSON with current class names and, unless {@code runtime} is null, that runtime set. */
    static String upgrade(String json, LayerRuntime runtime) throws IOException {
        ObjectMapper mapper = NeuralNetConfiguration.mapper();
        JsonNode root = mapper.readTree(json);
        boolean changed = false;
        for (JsonNode vertex : root.path("vertices")) {
            changed |= passDocumentIds(vertex);
            JsonNode layer = vertex.path("layerConf").path("layer");
            if (!(layer instanceof ObjectNode)) {
                continue;
            }
            ObjectNode conf = (ObjectNode) layer;
            String type = conf.path("@class").asText();
            if (MOVED.containsKey(type)) {
                if (conf.hasNonNull("weightNoise")) {
                    throw new IOException("Layer " + conf.path("layerName").asText() + " has weight noise, which a "
                            + "NemotronV3 block does not support");
                }
                conf.put("@class", MOVED.get(type));
                if (conf.has("iupdater")) {
                    conf.set("updater", conf.remove("iupdater"));
                }
                BASE_LAYER_ONLY.forEach(conf::remove);
                type = MOVED.get(type);
                changed = true;
            }
            if (conf.has("config") && (BLOCK.equals(type) || MtpDepthLayer.class.getName().equals(type))) {
                storeBlockSettings(mapper, conf, BLOCK.equals(type));
                changed = true;
            }
            if (runtime != null && selectable(type) && !runtime.name().equals(conf.path("runtime").asText())) {
                conf.put("runtime", runtime.name());
                changed = true;
            }
        }
        return changed ? mapper.writeValueAsString(root) : json;
    }

    /**
     * Graphs from before document isolation: DL4J's embedding layer (which multiplies its output by the input mask)
     * becomes {@link TokenEmbeddingLayer} and DL4J's merges (which OR their masks) {@link DocumentMergeVertex}, so
     * that document ids reach every layer. Same parameters, same results without document ids.
     */
    private static boolean passDocumentIds(JsonNode vertex) {
        if (!(vertex instanceof ObjectNode)) {
            return false;
        }
        if (MergeVertex.class.getName().equals(vertex.path("@class").asText())) {
            ((ObjectNode) vertex).put("@class", DocumentMergeVertex.class.getName());
            return true;
        }
        JsonNode layer = vertex.path("layerConf").path("layer");
        if (layer instanceof ObjectNode && EmbeddingSequenceLayer.class.getName().equals(layer.path("@class").asText())) {
            JsonNode preProcessor = vertex.path("preProcessor");
            boolean mtpInput = MtpInputIdsPreProcessor.class.getName().equals(preProcessor.path("@class").asText());
            ((ObjectNode) layer).put("@class", TokenEmbeddingLayer.class.getName());
            ((ObjectNode) layer).put("parts", mtpInput ? preProcessor.path("depths").asInt() + 1 : 1);
            return true;
        }
        return false;
    }

    /** Replaces a layer's whole HF config by the settings of its block(s). */
    private static void storeBlockSettings(ObjectMapper mapper, ObjectNode conf, boolean block) throws IOException {
        NemotronV3Config config = mapper.treeToValue(conf.remove("config"), NemotronV3Config.class);
        if (block) {
            BlockType type = BlockType.valueOf(conf.remove("blockType").asText());
            conf.set("block", mapper.valueToTree(BlockConfig.of(type, config)));
            return;
        }
        List<BlockConfig> sublayers = new ArrayList<>();
        for (JsonNode type : conf.remove("sublayerTypes")) {
            sublayers.add(BlockConfig.of(BlockType.valueOf(type.asText()), config));
        }
        ArrayNode array = conf.putArray("sublayers");
        sublayers.forEach(b -> array.add(mapper.<JsonNode>valueToTree(b)));
        conf.put("hiddenSize", config.getHiddenSize());
        conf.put("layerNormEpsilon", config.getLayerNormEpsilon());
        conf.put("initializerRange", config.getInitializerRange());
    }

    private static boolean selectable(String className) {
        try {
            return RuntimeSelectable.class.isAssignableFrom(Class.forName(className, false, GraphZips.class.getClassLoader()));
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    private static void copyReplacing(Path zip, Path copy, String configuration) throws IOException {
        try (ZipFile in = new ZipFile(zip.toFile());
             ZipOutputStream out = new ZipOutputStream(Files.newOutputStream(copy))) {
            Enumeration<? extends ZipEntry> entries = in.entries();
            while (entries.hasMoreElements()) {
                ZipEntry entry = entries.nextElement();
                out.putNextEntry(new ZipEntry(entry.getName()));
                if (CONFIGURATION.equals(entry.getName())) {
                    out.write(configuration.getBytes(StandardCharsets.UTF_8));
                } else {
                    try (InputStream data = in.getInputStream(entry)) {
                        data.transferTo(out);
                    }
                }
                out.closeEntry();
            }
        }
    }
}
