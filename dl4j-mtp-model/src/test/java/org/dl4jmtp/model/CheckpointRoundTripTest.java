package org.dl4jmtp.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.io.SafetensorsDType;
import org.dl4jmtp.io.SafetensorsTensorInfo;
import org.dl4jmtp.io.SafetensorsWriter;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * HF checkpoint round trips on the tiny-hybrid fixture: save → bytes identical to the fixture, reload → identical
 * logits; saving without MTP and the missing-MTP policy; strict-load error messages; accepted key variants.
 */
class CheckpointRoundTripTest {

    private static NemotronV3ForCausalLM reference;
    private static NemotronV3ForCausalLM.ForwardResult referenceOut;
    private static INDArray inputIds;

    @BeforeAll
    static void loadFixture() throws IOException {
        reference = TinyHybridFixture.load(DataType.DOUBLE);
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            inputIds = io.get("input_ids");
        }
        referenceOut = reference.forward(inputIds);
    }

    private static Path fixtureWeights() {
        return TinyHybridFixture.dir().resolve(SafetensorsCheckpoint.SINGLE_FILE);
    }

    private static NemotronV3ForCausalLM.LoadOptions doubleWithFixtureMtp() throws IOException {
        return NemotronV3ForCausalLM.LoadOptions.defaults().withMtp(TinyHybridFixture.mtpSettings())
                .withDataType(DataType.DOUBLE);
    }

    // ------------------------------------------------------------------------------------------------------------
    // helpers

    /** Every tensor of a safetensors file as stored (F32 here), sorted by key. */
    private static Map<String, INDArray> readAll(Path file) throws IOException {
        Map<String, INDArray> out = new TreeMap<>();
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(file)) {
            for (String key : ckpt.keys()) {
                out.put(key, ckpt.get(key));
            }
        }
        return out;
    }

    /** The raw bytes of one tensor: the data section starts after the 8-byte header length and the header. */
    private static byte[] rawBytes(byte[] file, SafetensorsTensorInfo info) {
        long headerLength = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        int start = Math.toIntExact(8 + headerLength + info.begin());
        int end = Math.toIntExact(8 + headerLength + info.end());
        return Arrays.copyOfRange(file, start, end);
    }

    /** A checkpoint dir with the fixture's config.json and the given tensors. */
    private static Path writeVariant(Path dir, Map<String, INDArray> tensors) throws IOException {
        Files.createDirectories(dir);
        Files.copy(TinyHybridFixture.dir().resolve("config.json"), dir.resolve("config.json"));
        SafetensorsWriter.write(dir.resolve(SafetensorsCheckpoint.SINGLE_FILE), tensors, Map.of("format", "pt"));
        return dir;
    }

    private static void assertIdenticalLogits(NemotronV3ForCausalLM model, boolean withMtp, String what) {
        NemotronV3ForCausalLM.ForwardResult out = model.forward(inputIds);
        assertExactlyEqual(referenceOut.mainLogits(), out.mainLogits(), what + ": main logits differ");
        if (withMtp) {
            assertEquals(referenceOut.mtpLogits().size(), out.mtpLogits().size());
            for (int d = 0; d < out.mtpLogits().size(); d++) {
                assertExactlyEqual(referenceOut.mtpLogits().get(d), out.mtpLogits().get(d),
                        what + ": MTP depth " + (d + 1) + " logits differ");
            }
        }
    }

    /** Exact equality of every value, with a readable message. */
    private static void assertExactlyEqual(INDArray expected, INDArray actual, String message) {
        assertArrayEquals(expected.shape(), actual.shape(), message + " (shape)");
        assertEquals(DataType.DOUBLE, actual.dataType());
        double maxDiff = expected.sub(actual).amaxNumber().doubleValue();
        assertTrue(maxDiff == 0.0, message + ": max |diff| = " + maxDiff);
        assertArrayEquals(expected.dup('c').data().asDouble(), actual.dup('c').data().asDouble(), message);
    }

    private static IllegalArgumentException loadFails(Path dir, NemotronV3ForCausalLM.LoadOptions options) {
        return assertThrows(IllegalArgumentException.class, () -> NemotronV3ForCausalLM.fromPretrained(dir, options));
    }

    // ------------------------------------------------------------------------------------------------------------
    // save / reload

    @Test
    void saveWithMtpIsByteIdenticalToTheFixtureAndReloadsExactly(@TempDir Path tmp) throws IOException {
        Path saved = tmp.resolve("saved");
        reference.save(saved, true);

        // tensors: same key set, F32, identical bytes
        byte[] fixtureBytes = Files.readAllBytes(fixtureWeights());
        byte[] savedBytes = Files.readAllBytes(saved.resolve(SafetensorsCheckpoint.SINGLE_FILE));
        try (SafetensorsCheckpoint expected = SafetensorsCheckpoint.open(fixtureWeights());
             SafetensorsCheckpoint actual = SafetensorsCheckpoint.open(saved)) {
            assertEquals(new TreeSet<>(expected.keys()), new TreeSet<>(actual.keys()), "key set");
            assertEquals(95, actual.size(), "92 parameters and 3 e_score_correction_bias buffers");
            assertEquals("pt", actual.metadata().get("format"));
            for (String key : expected.keys()) {
                SafetensorsTensorInfo e = expected.info(key);
                SafetensorsTensorInfo a = actual.info(key);
                assertEquals(SafetensorsDType.F32, a.dtype(), key + " dtype");
                assertArrayEquals(e.shape(), a.shape(), key + " shape");
                assertArrayEquals(rawBytes(fixtureBytes, e), rawBytes(savedBytes, a), key + " bytes");
            }
        }
        if (!Arrays.equals(fixtureBytes, savedBytes)) {
            System.out.println("CheckpointRoundTripTest: note: tensors are identical but the files differ as a whole"
                    + " (header layout)");
        }

        // config.json: the same meaning (every modelled field and the extra fields)
        NemotronV3Config fixtureConfig = NemotronV3Config.fromJson(TinyHybridFixture.dir().resolve("config.json"));
        NemotronV3Config savedConfig = NemotronV3Config.fromJson(saved.resolve("config.json"));
        assertEquals(fixtureConfig, savedConfig, "saved config.json reloads to an equal config");
        assertEquals(fixtureConfig.toJson(), savedConfig.toJson());
        assertEquals(2, savedConfig.getNumNextnPredictLayers());
        assertEquals("*E", savedConfig.mtpPattern());

        // reload → identical logits (main and every MTP depth)
        NemotronV3ForCausalLM reloaded = NemotronV3ForCausalLM.fromPretrained(saved, doubleWithFixtureMtp());
        assertIdenticalLogits(reloaded, true, "reloaded");
        // the reloaded config's own MTP settings (D = num_nextn_predict_layers = 2) build the same model
        NemotronV3ForCausalLM byDefaults = NemotronV3ForCausalLM.fromPretrained(saved,
                NemotronV3ForCausalLM.LoadOptions.defaults().withDataType(DataType.DOUBLE));
        assertIdenticalLogits(byDefaults, true, "reloaded with default MTP settings");
    }

    @Test
    void saveWithoutMtpAndTheMissingMtpPolicy(@TempDir Path tmp) throws IOException {
        Path saved = tmp.resolve("no-mtp");
        reference.save(saved, false);

        List<String> fixtureMtpKeys = new ArrayList<>();
        try (SafetensorsCheckpoint fixture = SafetensorsCheckpoint.open(fixtureWeights());
             SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(saved)) {
            for (String key : fixture.keys()) {
                if (key.startsWith("mtp.")) {
                    fixtureMtpKeys.add(key);
                } else {
                    assertTrue(ckpt.contains(key), "backbone/head key kept: " + key);
                }
            }
            assertFalse(ckpt.keys().stream().anyMatch(k -> k.startsWith("mtp.")), "no mtp.* key: " + ckpt.keys());
            assertEquals(fixture.size() - fixtureMtpKeys.size(), ckpt.size());
        }
        assertFalse(fixtureMtpKeys.isEmpty());
        JsonNode json = new ObjectMapper().readTree(saved.resolve("config.json").toFile());
        assertEquals(0, json.get("num_nextn_predict_layers").asInt(), "num_nextn_predict_layers");
        assertEquals(0, NemotronV3Config.fromJson(saved.resolve("config.json")).getNumNextnPredictLayers());

        // MTP enabled, missing weights not allowed: every missing mtp.* key is listed
        IllegalArgumentException e = loadFails(saved, doubleWithFixtureMtp());
        String msg = e.getMessage();
        assertTrue(msg.contains("missing keys (" + fixtureMtpKeys.size() + ")"), msg);
        for (String key : fixtureMtpKeys) {
            assertTrue(msg.contains(key), "missing key " + key + " is named in: " + msg);
        }
        assertFalse(msg.contains("unexpected keys"), msg);

        // allowed: loads, the backbone and head are the saved ones (identical main logits), MTP is freshly initialised
        NemotronV3ForCausalLM loaded = NemotronV3ForCausalLM.fromPretrained(saved,
                doubleWithFixtureMtp().withAllowMissingMtp(true));
        assertIdenticalLogits(loaded, false, "loaded without MTP weights");
        NemotronV3ForCausalLM.ForwardResult out = loaded.forward(inputIds);
        assertEquals(2, out.mtpLogits().size());
        assertTrue(out.mtpLogits().get(0).sub(referenceOut.mtpLogits().get(0)).amaxNumber().doubleValue() > 0,
                "fresh MTP depths differ from the fixture's");

        // MTP disabled: a plain LM loads without any allowance
        NemotronV3ForCausalLM plain = NemotronV3ForCausalLM.fromPretrained(saved,
                NemotronV3ForCausalLM.LoadOptions.defaults().withDataType(DataType.DOUBLE));
        assertIdenticalLogits(plain, false, "plain LM");
        assertTrue(plain.forward(inputIds).mtpLogits().isEmpty());
    }

    // ------------------------------------------------------------------------------------------------------------
    // strict-load errors

    @Test
    void missingKeyIsNamed(@TempDir Path tmp) throws IOException {
        Map<String, INDArray> tensors = readAll(fixtureWeights());
        String removed = "backbone.layers.1.mixer.k_proj.weight";
        assertTrue(tensors.remove(removed) != null);
        Path dir = writeVariant(tmp.resolve("missing"), tensors);
        String msg = loadFails(dir, doubleWithFixtureMtp()).getMessage();
        assertTrue(msg.contains("missing keys (1): [" + removed + "]"), msg);
        assertFalse(msg.contains("unexpected keys") || msg.contains("shape mismatches"), msg);
    }

    @Test
    void unexpectedKeyIsNamed(@TempDir Path tmp) throws IOException {
        Map<String, INDArray> tensors = readAll(fixtureWeights());
        String extra = "backbone.layers.2.mixer.surprise.weight";
        tensors.put(extra, Nd4j.zeros(DataType.FLOAT, 4, 4));
        Path dir = writeVariant(tmp.resolve("unexpected"), tensors);
        String msg = loadFails(dir, doubleWithFixtureMtp()).getMessage();
        assertTrue(msg.contains("unexpected keys (1): [" + extra + "]"), msg);
        assertFalse(msg.contains("missing keys") || msg.contains("shape mismatches"), msg);
    }

    @Test
    void shapeMismatchIsNamed(@TempDir Path tmp) throws IOException {
        Map<String, INDArray> tensors = readAll(fixtureWeights());
        String key = "backbone.layers.4.mixer.up_proj.weight";     // dense MLP [48, 32]
        assertArrayEquals(new long[]{48, 32}, tensors.get(key).shape());
        tensors.put(key, tensors.get(key).transpose().dup('c'));   // [32, 48]
        Path dir = writeVariant(tmp.resolve("misshaped"), tensors);
        String msg = loadFails(dir, doubleWithFixtureMtp()).getMessage();
        assertTrue(msg.contains("shape mismatches (1)"), msg);
        assertTrue(msg.contains(key + " [32, 48] (expected [48, 32])"), msg);
        assertFalse(msg.contains("missing keys") || msg.contains("unexpected keys"), msg);
    }

    // ------------------------------------------------------------------------------------------------------------
    // accepted key variants

    private static final Pattern EXPERT = Pattern.compile("(.*\\.mixer\\.experts)\\.(\\d+)\\.(up_proj|down_proj)\\.weight");

    /** Per-expert [I, d] / [d, I] tensors stacked into fused experts.up_proj [E, I, d] / experts.down_proj [E, d, I]. */
    private static Map<String, INDArray> fuseExperts(Map<String, INDArray> tensors) {
        Map<String, INDArray> out = new TreeMap<>();
        Map<String, TreeMap<Integer, INDArray>> groups = new TreeMap<>();
        for (Map.Entry<String, INDArray> e : tensors.entrySet()) {
            Matcher m = EXPERT.matcher(e.getKey());
            if (m.matches()) {
                groups.computeIfAbsent(m.group(1) + "." + m.group(3), k -> new TreeMap<>())
                        .put(Integer.parseInt(m.group(2)), e.getValue());
            } else {
                out.put(e.getKey(), e.getValue());
            }
        }
        assertEquals(6, groups.size(), "up/down of backbone.layers.3, mtp.layers.1 and mtp.layers.3: " + groups.keySet());
        for (Map.Entry<String, TreeMap<Integer, INDArray>> g : groups.entrySet()) {
            INDArray[] experts = g.getValue().values().toArray(new INDArray[0]);
            assertEquals(List.of(0, 1, 2, 3), new ArrayList<>(g.getValue().keySet()));
            out.put(g.getKey(), Nd4j.stack(0, experts).dup('c'));
        }
        return out;
    }

    private static Map<String, INDArray> renameKeys(Map<String, INDArray> tensors, UnaryOperator<String> rename) {
        Map<String, INDArray> out = new LinkedHashMap<>();
        tensors.forEach((k, v) -> {
            String renamed = rename.apply(k);
            assertTrue(out.put(renamed, v) == null, "rename collision at " + renamed);
        });
        return out;
    }

    @Test
    void keyVariantsLoadToIdenticalLogits(@TempDir Path tmp) throws IOException {
        Map<String, INDArray> original = readAll(fixtureWeights());
        assertTrue(original.containsKey("backbone.embeddings.weight") && original.containsKey("backbone.norm_f.weight"));

        Map<String, Map<String, INDArray>> variants = new LinkedHashMap<>();
        variants.put("model. prefix", renameKeys(original,
                k -> k.startsWith("backbone.") ? "model." + k.substring("backbone.".length()) : k));
        variants.put("embed_tokens and backbone.norm", renameKeys(original,
                k -> k.equals("backbone.embeddings.weight") ? "backbone.embed_tokens.weight"
                        : k.equals("backbone.norm_f.weight") ? "backbone.norm.weight" : k));
        Map<String, INDArray> fused = fuseExperts(original);
        variants.put("fused experts", fused);
        variants.put("all at once (model.embed_tokens, model.norm, fused experts)", renameKeys(fused, k -> {
            String r = k.equals("backbone.embeddings.weight") ? "backbone.embed_tokens.weight"
                    : k.equals("backbone.norm_f.weight") ? "backbone.norm.weight" : k;
            return r.startsWith("backbone.") ? "model." + r.substring("backbone.".length()) : r;
        }));

        // the variants really use the variant names
        assertTrue(variants.get("model. prefix").containsKey("model.layers.0.mixer.in_proj.weight"));
        assertTrue(variants.get("embed_tokens and backbone.norm").containsKey("backbone.embed_tokens.weight"));
        assertTrue(variants.get("embed_tokens and backbone.norm").containsKey("backbone.norm.weight"));
        assertTrue(variants.get("fused experts").containsKey("backbone.layers.3.mixer.experts.up_proj"));
        assertArrayEquals(new long[]{4, 16, 32}, fused.get("backbone.layers.3.mixer.experts.up_proj").shape());
        assertArrayEquals(new long[]{4, 32, 16}, fused.get("backbone.layers.3.mixer.experts.down_proj").shape());
        assertArrayEquals(new long[]{4, 16, 32}, fused.get("mtp.layers.1.mixer.experts.up_proj").shape());
        assertFalse(fused.containsKey("backbone.layers.3.mixer.experts.0.up_proj.weight"));
        Map<String, INDArray> all = variants.get("all at once (model.embed_tokens, model.norm, fused experts)");
        assertTrue(all.containsKey("model.embed_tokens.weight") && all.containsKey("model.norm.weight")
                && all.containsKey("model.layers.3.mixer.experts.down_proj"), all.keySet().toString());

        int i = 0;
        for (Map.Entry<String, Map<String, INDArray>> v : variants.entrySet()) {
            Path dir = writeVariant(tmp.resolve("variant" + i++), v.getValue());
            NemotronV3ForCausalLM model = NemotronV3ForCausalLM.fromPretrained(dir, doubleWithFixtureMtp());
            assertIdenticalLogits(model, true, v.getKey());
        }
    }

    @Test
    void configOnlyRoundTripKeepsExtraFields() throws IOException {
        MtpConfig settings = TinyHybridFixture.mtpSettings();
        assertEquals(2, settings.getNumLayers());
        NemotronV3Config fixtureConfig = NemotronV3Config.fromJson(TinyHybridFixture.dir().resolve("config.json"));
        assertTrue(fixtureConfig.getExtraFields().containsKey("_fixture"));
        assertTrue(fixtureConfig.getExtraFields().containsKey("architectures"));
        assertEquals(fixtureConfig, NemotronV3Config.fromJsonString(fixtureConfig.toJson()));
    }
}
