package org.dl4jmtp.config;

import static org.dl4jmtp.config.BlockType.ATTENTION;
import static org.dl4jmtp.config.BlockType.MAMBA;
import static org.dl4jmtp.config.BlockType.MLP;
import static org.dl4jmtp.config.BlockType.MOE;
import static org.dl4jmtp.config.ConfigFixtures.MINIMAL;
import static org.dl4jmtp.config.ConfigFixtures.minimalWith;
import static org.dl4jmtp.config.ConfigFixtures.minimalWithout;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Reading HF config.json (fixture, presets, aliases, both pattern forms) and writing it back. */
class ConfigParsingTest {

    /** Strict: no NaN/Infinity tokens, as Python's json and other readers expect. */
    private static final ObjectMapper STRICT = new ObjectMapper();

    private static final double INF = Double.POSITIVE_INFINITY;

    @Test
    void tinyHybridFixture() throws Exception {
        NemotronV3Config c = NemotronV3Config.fromJson(ConfigFixtures.tinyHybridConfig());
        assertEquals("nemotron_h", c.getModelType());
        assertEquals(97, c.getVocabSize());
        assertEquals(32, c.getHiddenSize());
        assertEquals(6, c.getNumHiddenLayers());
        assertEquals("M*ME-M", c.pattern());
        assertEquals(List.of(MAMBA, ATTENTION, MAMBA, MOE, MLP, MAMBA), c.getLayerTypes());
        assertEquals(4, c.getNumAttentionHeads());
        assertEquals(2, c.getNumKeyValueHeads());
        assertEquals(8, c.getHeadDim());
        assertEquals(4, c.getMambaNumHeads());
        assertEquals(8, c.getMambaHeadDim());
        assertEquals(16, c.getSsmStateSize());
        assertEquals(2, c.getNGroups());
        assertEquals(4, c.getConvKernel());
        assertEquals(8, c.getChunkSize());
        assertTrue(c.isUseConvBias());
        assertFalse(c.isUseBias());
        assertEquals(48, c.getIntermediateSize());
        assertEquals(4, c.getNRoutedExperts());
        assertEquals(2, c.getNumExpertsPerTok());
        assertEquals(16, c.getMoeIntermediateSize());
        assertEquals(24, c.getMoeSharedExpertIntermediateSize());
        assertEquals(2.5, c.getRoutedScalingFactor());
        assertNull(c.getMoeLatentSize());
        assertTrue(c.isNormTopkProb());
        assertEquals(1e-5, c.getLayerNormEpsilon());
        assertEquals(0.001, c.getTimeStepMin());
        assertEquals(0.1, c.getTimeStepMax());
        assertEquals(1e-4, c.getTimeStepFloor());
        assertArrayEquals(new double[] {0.0, INF}, c.getTimeStepLimit());
        assertEquals(2, c.getNumNextnPredictLayers());
        assertEquals(List.of(ATTENTION, MOE), c.getMtpLayerTypes());
        assertEquals("*E", c.mtpPattern());
        assertEquals(1, c.getBosTokenId());
        assertEquals(List.of(2), c.getEosTokenIds());
        assertEquals(0, c.getPadTokenId());
        assertFalse(c.isTieWordEmbeddings());

        // derived
        assertEquals(32, c.dInner());
        assertEquals(96, c.convDim());
        assertEquals(132, c.inProjSize()); // 2*32 + 2*2*16 + 4 (the fixture's in_proj.weight is [132, 32])
        assertEquals(2, c.mambaHeadsPerGroup());
        assertEquals(32, c.queryWidth());
        assertEquals(16, c.kvWidth());
        assertEquals(2, c.queriesPerKvHead());
        assertFalse(c.hasLatentMoe());
        assertEquals(32, c.expertInputSize());
        assertEquals(3, c.countLayers(MAMBA));
        assertEquals(1, c.countLayers(ATTENTION));
        assertEquals(1, c.countLayers(MLP));
        assertEquals(1, c.countLayers(MOE));

        // unknown fields are kept; modelled fields and aliases are not
        Map<String, Object> extra = c.getExtraFields();
        assertEquals(List.of("NemotronHForCausalLM"), extra.get("architectures"));
        assertEquals("float32", extra.get("torch_dtype"));
        assertEquals(4096, extra.get("max_position_embeddings"));
        assertTrue(extra.containsKey("sliding_window"));
        assertNull(extra.get("sliding_window"));
        assertTrue(extra.get("_fixture") instanceof Map);
        assertEquals(2, ((Map<?, ?>) extra.get("_fixture")).get("mtp_num_layers"));
        for (String modelled : List.of("vocab_size", "mamba_proj_bias", "expand", "hybrid_override_pattern",
                "mtp_hybrid_override_pattern", "eos_token_id", "moe_latent_size")) {
            assertFalse(extra.containsKey(modelled), modelled);
        }
    }

    /** The derived widths must match the tensor shapes of the fixture checkpoint (safetensors header). */
    @Test
    void derivedWidthsMatchTheFixtureCheckpoint() throws Exception {
        NemotronV3Config c = NemotronV3Config.fromJson(ConfigFixtures.tinyHybridConfig());
        JsonNode header = safetensorsHeader(ConfigFixtures.tinyHybridConfig().resolveSibling("model.safetensors"));
        assertEquals(List.of(c.inProjSize(), c.getHiddenSize()), shape(header, "backbone.layers.0.mixer.in_proj.weight"));
        assertEquals(List.of(c.convDim(), 1, c.getConvKernel()), shape(header, "backbone.layers.0.mixer.conv1d.weight"));
        assertEquals(List.of(c.getHiddenSize(), c.dInner()), shape(header, "backbone.layers.0.mixer.out_proj.weight"));
        assertEquals(List.of(c.queryWidth(), c.getHiddenSize()), shape(header, "backbone.layers.1.mixer.q_proj.weight"));
        assertEquals(List.of(c.kvWidth(), c.getHiddenSize()), shape(header, "backbone.layers.1.mixer.k_proj.weight"));
        assertEquals(List.of(c.getMoeIntermediateSize(), c.expertInputSize()),
                shape(header, "backbone.layers.3.mixer.experts.0.up_proj.weight"));
        // physical MTP depths x pattern length sublayers: mtp.layers.0..3
        MtpConfig m = MtpConfig.fromHf(c);
        assertTrue(header.has("mtp.layers." + (m.totalSublayers() - 1) + ".final_layernorm.weight"));
        assertFalse(header.has("mtp.layers." + m.totalSublayers() + ".norm.weight"));
    }

    private static JsonNode safetensorsHeader(Path file) throws Exception {
        try (var in = Files.newInputStream(file)) {
            byte[] len = in.readNBytes(8);
            long n = java.nio.ByteBuffer.wrap(len).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
            return STRICT.readTree(in.readNBytes((int) n));
        }
    }

    private static List<Integer> shape(JsonNode header, String key) {
        JsonNode entry = header.get(key);
        assertTrue(entry != null, key);
        List<Integer> dims = new java.util.ArrayList<>();
        entry.get("shape").forEach(d -> dims.add(d.asInt()));
        return dims;
    }

    @ParameterizedTest
    @ValueSource(strings = {"small", "medium"})
    void benchPresetsParse(String preset) throws Exception {
        JsonNode root = STRICT.readTree(ConfigFixtures.presets().toFile());
        NemotronV3Config c = NemotronV3Config.fromJsonString(root.get(preset).get("config").toString());
        JsonNode raw = root.get(preset).get("config");
        assertEquals(raw.get("hybrid_override_pattern").asText(), c.pattern());
        assertEquals(raw.get("num_hidden_layers").asInt(), c.getNumHiddenLayers());
        assertEquals(raw.get("vocab_size").asInt(), c.getVocabSize());
        assertEquals(raw.get("hidden_size").asInt(), c.getHiddenSize());
        assertEquals(raw.get("n_routed_experts").asInt(), c.getNRoutedExperts());
        assertEquals(raw.get("mamba_num_heads").asInt() * raw.get("mamba_head_dim").asInt(), c.dInner());
        assertEquals(List.of(ATTENTION, MOE), c.getMtpLayerTypes());
        assertEquals(0, c.countLayers(MLP));
        assertEquals(c, NemotronV3Config.fromJsonString(c.toJson()));
    }

    @Test
    void hfAliasesAreAccepted() {
        String json = MINIMAL
                .replace("\"n_groups\": 2", "\"mamba_n_groups\": 2")
                .replace("\"conv_kernel\": 4", "\"mamba_d_conv\": 3")
                .replace("\"chunk_size\": 8", "\"mamba_chunk_size\": 16")
                .replace("\"model_type\": \"nemotron_h\",", "\"model_type\": \"nemotron_h\", \"mamba_expand\": 3,"
                        + " \"mamba_dt_min\": 0.002, \"mamba_dt_max\": 0.2, \"mamba_dt_init_floor\": 0.0002,"
                        + " \"mamba_dt_limit\": [0.0001, 50.0], \"mamba_conv_bias\": false, \"mamba_proj_bias\": true,");
        NemotronV3Config c = NemotronV3Config.fromJsonString(json);
        assertEquals(2, c.getNGroups());
        assertEquals(3, c.getConvKernel());
        assertEquals(16, c.getChunkSize());
        assertEquals(3, c.getExpand());
        assertEquals(0.002, c.getTimeStepMin());
        assertEquals(0.2, c.getTimeStepMax());
        assertEquals(0.0002, c.getTimeStepFloor());
        assertArrayEquals(new double[] {0.0001, 50.0}, c.getTimeStepLimit());
        assertFalse(c.isUseConvBias());
        assertTrue(c.isUseBias());
        assertTrue(c.getExtraFields().isEmpty(), c.getExtraFields().toString());
        assertEquals(32, c.dInner(), "d_inner = nh*P, independent of expand");
    }

    @Test
    void aliasAgreeingWithCanonicalIsFineButConflictIsAnError() {
        NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWith("\"n_groups\": 2,",
                "\"n_groups\": 2, \"mamba_n_groups\": 2.0,"));
        assertEquals(2, c.getNGroups());
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                minimalWith("\"n_groups\": 2,", "\"n_groups\": 2, \"mamba_n_groups\": 4,"))).getMessage();
        assertTrue(msg.contains("n_groups") && msg.contains("mamba_n_groups"), msg);
    }

    @Test
    void layersBlockTypeInBothNamingSchemes() {
        String old = minimalWithout("hybrid_override_pattern").replace("\"num_hidden_layers\": 6,",
                "\"layers_block_type\": [\"mamba\", \"attention\", \"mamba\", \"moe\", \"mlp\", \"mamba\"],");
        String newest = minimalWithout("hybrid_override_pattern").replace("\"num_hidden_layers\": 6,",
                "\"layers_block_type\": [\"linear_attention\", \"full_attention\", \"linear_attention\", \"moe\","
                        + " \"mlp\", \"linear_attention\"],");
        NemotronV3Config fromString = NemotronV3Config.fromJsonString(MINIMAL);
        for (String json : List.of(old, newest)) {
            NemotronV3Config c = NemotronV3Config.fromJsonString(json);
            assertEquals("M*ME-M", c.pattern());
            assertEquals(6, c.getNumHiddenLayers(), "derived from the list when num_hidden_layers is absent");
            assertEquals(fromString, c);
        }
    }

    @Test
    void patternAndListMustAgree() {
        NemotronV3Config both = NemotronV3Config.fromJsonString(minimalWith("\"num_hidden_layers\": 6,",
                "\"layers_block_type\": [\"mamba\", \"full_attention\", \"mamba\", \"moe\", \"mlp\", \"mamba\"],"));
        assertEquals("M*ME-M", both.pattern());
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                minimalWith("\"num_hidden_layers\": 6,", "\"layers_block_type\": [\"mamba\", \"mamba\", \"mamba\","
                        + " \"moe\", \"mlp\", \"mamba\"],"))).getMessage();
        assertTrue(msg.contains("hybrid_override_pattern") && msg.contains("layers_block_type"), msg);
    }

    @Test
    void staleNumHiddenLayersYieldsToTheLayerTypesWithAWarning() {
        java.io.PrintStream err = System.err;
        java.io.ByteArrayOutputStream captured = new java.io.ByteArrayOutputStream();
        System.setErr(new java.io.PrintStream(captured, true));
        try {
            NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWith("\"num_hidden_layers\": 6",
                    "\"num_hidden_layers\": 52"));
            assertEquals(6, c.getNumHiddenLayers());
            assertEquals("M*ME-M", c.pattern());
        } finally {
            System.setErr(err);
        }
        String warning = captured.toString();
        assertTrue(warning.contains("num_hidden_layers (52)") && warning.contains("using 6"), warning);
        assertEquals(6, NemotronV3Config.fromJsonString(minimalWith("\"num_hidden_layers\": 6",
                "\"num_hidden_layers\": null")).getNumHiddenLayers());
    }

    @Test
    void olderFieldNamesOfPublishedConfigs() {
        // Nemotron-H 8B: attention_head_dim, hidden_act, rms_norm_eps; Nemotron 3: norm_eps beside layer_norm_epsilon
        NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWithout("mlp_hidden_act")
                .replace("\"head_dim\": 8", "\"attention_head_dim\": 8")
                .replace("\"layer_norm_epsilon\": 1e-05", "\"rms_norm_eps\": 1e-06, \"norm_eps\": 1e-04")
                .replace("\"model_type\": \"nemotron_h\",",
                        "\"model_type\": \"nemotron_h\", \"hidden_act\": \"relu2\","));
        assertEquals(8, c.getHeadDim());
        assertEquals("relu2", c.getMlpHiddenAct());
        assertEquals(1e-6, c.getLayerNormEpsilon(), "rms_norm_eps before norm_eps");
        assertEquals(Map.of("norm_eps", 1e-04), c.getExtraFields(), "the unused spelling is kept, as HF does");
        NemotronV3Config newest = NemotronV3Config.fromJsonString(minimalWith("\"layer_norm_epsilon\": 1e-05",
                "\"layer_norm_epsilon\": 1e-05, \"norm_eps\": 1e-04, \"hidden_act\": \"silu\""));
        assertEquals(1e-5, newest.getLayerNormEpsilon(), "layer_norm_epsilon wins");
        assertEquals("relu2", newest.getMlpHiddenAct(), "mlp_hidden_act wins");
        assertMessageContains(minimalWithout("mlp_hidden_act").replace("\"model_type\": \"nemotron_h\",",
                "\"model_type\": \"nemotron_h\", \"hidden_act\": \"gelu\","), "hidden_act");
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                minimalWith("\"head_dim\": 8", "\"head_dim\": 8, \"attention_head_dim\": 16"))).getMessage();
        assertTrue(msg.contains("head_dim") && msg.contains("attention_head_dim"), msg);
    }

    @Test
    void hfAttributeMapNamesAndNullKeyValueHeads() {
        NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWithout("hybrid_override_pattern")
                .replace("\"num_hidden_layers\": 6,", "\"layer_types\": [\"mamba\", \"attention\", \"mamba\","
                        + " \"moe\", \"mlp\", \"mamba\"],")
                .replace("\"n_routed_experts\": 4", "\"num_local_experts\": 4")
                .replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": null"));
        assertEquals("M*ME-M", c.pattern());
        assertEquals(4, c.getNRoutedExperts());
        assertEquals(4, c.getNumKeyValueHeads(), "null: one KV head per query head, as HF");
    }

    @Test
    void moeFieldsMayBeNullWhenNoLayerIsMoe() {
        String noMoe = minimalWith("\"hybrid_override_pattern\": \"M*ME-M\"", "\"hybrid_override_pattern\": \"M*MM-M\"")
                .replace("\"mtp_hybrid_override_pattern\": \"*E\"", "\"mtp_hybrid_override_pattern\": \"*-\"");
        for (String field : List.of("n_routed_experts", "n_shared_experts", "num_experts_per_tok",
                "moe_intermediate_size", "moe_shared_expert_intermediate_size", "n_group", "topk_group",
                "routed_scaling_factor")) {
            String json = noMoe.replaceFirst("\"" + field + "\": [0-9.]+", "\"" + field + "\": null");
            assertEquals("M*MM-M", NemotronV3Config.fromJsonString(json).pattern(), field);
            String withMoe = MINIMAL.replaceFirst("\"" + field + "\": [0-9.]+", "\"" + field + "\": null");
            assertMessageContains(withMoe, field + " must be set (not null)");
        }
        // an MoE sublayer in the MTP depth needs them too
        assertMessageContains(noMoe.replace("\"*-\"", "\"*E\"").replace("\"n_routed_experts\": 4",
                "\"n_routed_experts\": null"), "n_routed_experts must be set");
    }

    @Test
    void groupLimitedRoutingParsesAndRoundTrips() throws Exception {
        NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWith("\"n_group\": 1", "\"n_group\": 2"));
        assertEquals(2, c.getNGroup());
        assertEquals(1, c.getTopkGroup());
        NemotronV3Config again = NemotronV3Config.fromJsonString(c.toJson());
        assertEquals(2, again.getNGroup());
        assertEquals(1, again.getTopkGroup());
        // 4 experts cannot form 8 groups: refused, naming the fields
        assertMessageContains(minimalWith("\"n_group\": 1", "\"n_group\": 8").replace("\"topk_group\": 1",
                "\"topk_group\": 4"), "n_routed_experts (4) must be a multiple of n_group (8)");
    }

    @Test
    void numHiddenLayersDerivedWhenAbsent() {
        NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWithout("num_hidden_layers"));
        assertEquals(6, c.getNumHiddenLayers());
    }

    @Test
    void unknownBlockTypeNameNamesFieldIndexAndValue() {
        String json = minimalWithout("hybrid_override_pattern").replace("\"num_hidden_layers\": 6,",
                "\"layers_block_type\": [\"mamba\", \"attention\", \"ssm\", \"moe\", \"mlp\", \"mamba\"],");
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(json))
                .getMessage();
        assertTrue(msg.contains("layers_block_type[2]") && msg.contains("'ssm'") && msg.contains("full_attention"),
                msg);
    }

    @Test
    void missingBackbonePatternNamesBothFields() {
        String msg = assertThrows(IllegalArgumentException.class,
                () -> NemotronV3Config.fromJsonString(minimalWithout("hybrid_override_pattern"))).getMessage();
        assertTrue(msg.contains("hybrid_override_pattern") && msg.contains("layers_block_type"), msg);
    }

    @Test
    void mtpLayersBlockTypeInBothSchemes() {
        for (String names : List.of("[\"attention\", \"moe\"]", "[\"full_attention\", \"moe\"]")) {
            String json = minimalWith("\"mtp_hybrid_override_pattern\": \"*E\"", "\"mtp_layers_block_type\": " + names);
            NemotronV3Config c = NemotronV3Config.fromJsonString(json);
            assertEquals(List.of(ATTENTION, MOE), c.getMtpLayerTypes());
            assertEquals("*E", c.mtpPattern());
        }
        NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWith("\"mtp_hybrid_override_pattern\": \"*E\"",
                "\"mtp_layers_block_type\": [\"mamba\", \"mlp\", \"moe\"]"));
        assertEquals("M-E", c.mtpPattern());
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                minimalWith("\"mtp_hybrid_override_pattern\": \"*E\"", "\"mtp_layers_block_type\": [\"moe\", \"x\"]")))
                .getMessage();
        assertTrue(msg.contains("mtp_layers_block_type[1]") && msg.contains("'x'"), msg);
    }

    @Test
    void badMtpSymbolNamesFieldAndValidSet() {
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                minimalWith("\"*E\"", "\"*Q\""))).getMessage();
        assertTrue(msg.contains("mtp_hybrid_override_pattern") && msg.contains("'Q'")
                && msg.contains("['*', '-', 'E', 'M']"), msg);
    }

    @Test
    void defaultMtpPatternWhenOnlyNumNextnGiven() {
        NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWithout("mtp_hybrid_override_pattern"));
        assertEquals(2, c.getNumNextnPredictLayers());
        assertEquals(List.of(ATTENTION, MOE), c.getMtpLayerTypes());

        // an empty string counts as absent (NeMo Automodel tests truthiness)
        c = NemotronV3Config.fromJsonString(minimalWith("\"*E\"", "\"\""));
        assertEquals("*E", c.mtpPattern());
    }

    @Test
    void noMtpWhenNumNextnIsZeroAndNoPattern() {
        String json = minimalWithout("mtp_hybrid_override_pattern").replace("\"num_nextn_predict_layers\": 2",
                "\"num_nextn_predict_layers\": 0");
        NemotronV3Config c = NemotronV3Config.fromJsonString(json);
        assertNull(c.getMtpLayerTypes());
        assertNull(c.mtpPattern());
        NemotronV3Config noKey = NemotronV3Config.fromJsonString(minimalWithout("mtp_hybrid_override_pattern")
                .replace(",\n  \"num_nextn_predict_layers\": 2", ""));
        assertEquals(0, noKey.getNumNextnPredictLayers());
        assertNull(noKey.getMtpLayerTypes());
        assertFalse(noKey.toJson().contains("mtp_hybrid_override_pattern"));
    }

    @Test
    void timeStepLimitForms() {
        assertArrayEquals(new double[] {0.0, INF},
                NemotronV3Config.fromJsonString(MINIMAL).getTimeStepLimit(), "absent = default");
        String[] infinite = {"[0.0, Infinity]", "[0.0, \"Infinity\"]", "[0, \"inf\"]", "[0.0, 1e309]", "null"};
        for (String v : infinite) {
            NemotronV3Config c = NemotronV3Config.fromJsonString(withLimit(v));
            assertArrayEquals(new double[] {0.0, INF}, c.getTimeStepLimit(), v);
        }
        assertArrayEquals(new double[] {0.001, 100.0},
                NemotronV3Config.fromJsonString(withLimit("[0.001, \"100\"]")).getTimeStepLimit());
        for (String bad : List.of("[0.0]", "0.0", "[0.0, \"big\"]", "[1.0, 0.5]")) {
            String msg = assertThrows(IllegalArgumentException.class,
                    () -> NemotronV3Config.fromJsonString(withLimit(bad)), bad).getMessage();
            assertTrue(msg.contains("time_step_limit"), msg);
        }
    }

    private static String withLimit(String value) {
        return minimalWith("\"model_type\": \"nemotron_h\",", "\"model_type\": \"nemotron_h\", \"time_step_limit\": "
                + value + ",");
    }

    @Test
    void eosTokenIdIntListOrNull() {
        NemotronV3Config c = NemotronV3Config.fromJsonString(minimalWith("\"vocab_size\": 97,",
                "\"vocab_size\": 97, \"eos_token_id\": [2, 11], \"bos_token_id\": null,"));
        assertEquals(List.of(2, 11), c.getEosTokenIds());
        assertNull(c.getBosTokenId());
        assertEquals(c, NemotronV3Config.fromJsonString(c.toJson()));
        c = NemotronV3Config.fromJsonString(minimalWith("\"vocab_size\": 97,", "\"vocab_size\": 97, \"eos_token_id\": 7,"));
        assertEquals(List.of(7), c.getEosTokenIds());
        c = NemotronV3Config.fromJsonString(minimalWith("\"vocab_size\": 97,",
                "\"vocab_size\": 97, \"eos_token_id\": null,"));
        assertEquals(List.of(), c.getEosTokenIds());
    }

    @Test
    void wrongJsonTypesNameTheField() {
        assertMessageContains(minimalWith("\"vocab_size\": 97", "\"vocab_size\": \"97\""), "vocab_size");
        assertMessageContains(minimalWith("\"vocab_size\": 97", "\"vocab_size\": 97.5"), "vocab_size");
        assertMessageContains(minimalWith("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": 0"),
                "tie_word_embeddings");
        assertMessageContains(minimalWith("\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": \"1e-5\""),
                "layer_norm_epsilon");
        assertMessageContains(minimalWith("\"head_dim\": 8", "\"head_dim\": null"), "head_dim");
        assertMessageContains("[1, 2]", "JSON object");
        assertMessageContains("{ not json", "not valid JSON");
        assertMessageContains("{\n  \"vocab_size\": 97,\n}", "(line 3, column 1)");
        // 8.0 is an integer value: accepted
        assertEquals(8, NemotronV3Config.fromJsonString(minimalWith("\"head_dim\": 8", "\"head_dim\": 8.0")).getHeadDim());
    }

    private static void assertMessageContains(String json, String expected) {
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(json))
                .getMessage();
        assertTrue(msg.contains(expected), msg);
    }

    @Test
    void fixtureRoundTripAndExtrasPreserved() throws Exception {
        NemotronV3Config c = NemotronV3Config.fromJson(ConfigFixtures.tinyHybridConfig());
        String json = c.toJson();
        JsonNode written = STRICT.readTree(json); // strict JSON
        assertEquals("M*ME-M", written.get("hybrid_override_pattern").asText());
        assertEquals("*E", written.get("mtp_hybrid_override_pattern").asText());
        assertEquals(6, written.get("num_hidden_layers").asInt());
        assertEquals("NemotronHForCausalLM", written.get("architectures").get(0).asText());
        assertEquals(2, written.get("_fixture").get("mtp_num_layers").asInt());
        assertTrue(written.get("moe_latent_size").isNull());
        assertFalse(written.has("time_step_limit"), "the default (0, inf) is not written");
        assertFalse(written.has("layers_block_type"));
        assertEquals(c, NemotronV3Config.fromJsonString(json));

        // every key of the original file survives (aliases excepted, which are written under both names anyway)
        JsonNode original = STRICT.readTree(ConfigFixtures.tinyHybridConfig().toFile());
        original.fieldNames().forEachRemaining(k -> assertTrue(written.has(k), k));
        original.fields().forEachRemaining(e -> {
            if (!e.getKey().equals("time_step_limit")) {
                JsonNode w = written.get(e.getKey());
                assertTrue(w.equals(e.getValue())
                        || (w.isNumber() && e.getValue().isNumber() && w.doubleValue() == e.getValue().doubleValue()),
                        e.getKey() + ": " + e.getValue() + " vs " + w);
            }
        });
    }

    @Test
    void nonDefaultTimeStepLimitIsWrittenAsStrictJson() throws Exception {
        NemotronV3Config c = NemotronV3Config.fromJsonString(MINIMAL);
        c.setTimeStepLimit(new double[] {0.001, INF});
        String json = c.toJson();
        JsonNode limit = STRICT.readTree(json).get("time_step_limit");
        assertEquals(0.001, limit.get(0).doubleValue());
        assertFalse(json.contains("Infinity"), json);
        assertEquals(INF, limit.get(1).doubleValue());
        assertArrayEquals(new double[] {0.001, INF}, NemotronV3Config.fromJsonString(json).getTimeStepLimit());
        c.setTimeStepLimit(new double[] {0.001, 0.5});
        assertEquals(c, NemotronV3Config.fromJsonString(c.toJson()));
    }

    @Test
    void programmaticConfigRoundTrip() {
        NemotronV3Config c = new NemotronV3Config()
                .hybridOverridePattern("MEM*E")
                .mtpHybridOverridePattern("*E");
        c.setVocabSize(64);
        c.setHiddenSize(16);
        c.setNumAttentionHeads(2);
        c.setNumKeyValueHeads(1);
        c.setHeadDim(8);
        c.setMambaNumHeads(2);
        c.setMambaHeadDim(8);
        c.setSsmStateSize(4);
        c.setNGroups(1);
        c.setNRoutedExperts(4);
        c.setMoeLatentSize(8);
        c.setNumNextnPredictLayers(1);
        c.setEosTokenIds(List.of(2, 11));
        c.getExtraFields().put("rope_theta", 10000);
        c.validate();
        assertEquals(5, c.getNumHiddenLayers());
        assertTrue(c.hasLatentMoe());
        assertEquals(8, c.expertInputSize());
        NemotronV3Config back = NemotronV3Config.fromJsonString(c.toJson());
        assertEquals(c, back);
        assertEquals(10000, back.getExtraFields().get("rope_theta"));
    }

    @Test
    void extraFieldsMustNotShadowModelledFields() {
        NemotronV3Config c = NemotronV3Config.fromJsonString(MINIMAL);
        c.getExtraFields().put("mamba_n_groups", 3);
        String msg = assertThrows(IllegalArgumentException.class, c::toJson).getMessage();
        assertTrue(msg.contains("mamba_n_groups"), msg);
    }

    @Test
    void writeJsonIsAtomicAndReadable(@TempDir Path dir) throws Exception {
        NemotronV3Config c = NemotronV3Config.fromJson(ConfigFixtures.tinyHybridConfig());
        Path target = dir.resolve("sub").resolve("config.json");
        c.writeJson(target);
        Files.writeString(dir.resolve("sub").resolve("other.txt"), "x");
        c.setVocabSize(101);
        c.writeJson(target); // replaces the existing file
        assertEquals(c, NemotronV3Config.fromJson(target));
        try (Stream<Path> files = Files.list(target.getParent())) {
            assertEquals(List.of("config.json", "other.txt"),
                    files.map(p -> p.getFileName().toString()).sorted().toList(), "no temp file left behind");
        }
    }

    @Test
    void fromJsonPrefixesThePath(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("config.json");
        Files.writeString(file, minimalWith("\"vocab_size\": 97", "\"vocab_size\": 0"));
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJson(file))
                .getMessage();
        assertTrue(msg.startsWith(file.toString()) && msg.contains("vocab_size"), msg);
    }

    @Test
    @SuppressWarnings("unchecked")
    void copyIsDeepAndEqual() throws Exception {
        NemotronV3Config c = NemotronV3Config.fromJson(ConfigFixtures.tinyHybridConfig());
        NemotronV3Config copy = c.copy();
        assertEquals(c, copy);
        assertNotSame(c.getLayerTypes(), copy.getLayerTypes());
        assertNotSame(c.getTimeStepLimit(), copy.getTimeStepLimit());
        copy.getLayerTypes().set(0, ATTENTION);
        copy.getTimeStepLimit()[1] = 5.0;
        ((Map<String, Object>) copy.getExtraFields().get("_fixture")).put("mtp_num_layers", 9);
        assertEquals("M*ME-M", c.pattern());
        assertEquals(INF, c.getTimeStepLimit()[1]);
        assertEquals(2, ((Map<?, ?>) c.getExtraFields().get("_fixture")).get("mtp_num_layers"));
    }
}
