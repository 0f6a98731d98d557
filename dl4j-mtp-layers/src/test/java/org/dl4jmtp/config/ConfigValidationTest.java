package org.dl4jmtp.config;

import static org.dl4jmtp.config.ConfigFixtures.MINIMAL;
import static org.dl4jmtp.config.ConfigFixtures.minimalWith;
import static org.dl4jmtp.config.ConfigFixtures.minimalWithout;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Every rule of {@link NemotronV3Config#validate()}: the message must name the field. */
class ConfigValidationTest {

    private static NemotronV3Config valid() {
        return NemotronV3Config.fromJsonString(MINIMAL);
    }

    /** Applies {@code edit} to a valid config and expects validate() to fail naming every {@code expected}. */
    private static void assertInvalid(Consumer<NemotronV3Config> edit, String... expected) {
        NemotronV3Config c = valid();
        edit.accept(c);
        String msg = assertThrows(IllegalArgumentException.class, c::validate).getMessage();
        for (String e : expected) {
            assertTrue(msg.contains(e), "expected \"" + e + "\" in: " + msg);
        }
    }

    @Test
    void baselineIsValid() {
        assertDoesNotThrow(() -> valid().validate());
    }

    @Test
    void modelType() {
        assertInvalid(c -> c.setModelType(null), "model_type", "missing");
        assertInvalid(c -> c.setModelType("mamba2"), "model_type", "mamba2", "nemotron_h");
        String msg = assertThrows(IllegalArgumentException.class,
                () -> NemotronV3Config.fromJsonString(minimalWithout("model_type"))).getMessage();
        assertTrue(msg.contains("model_type") && msg.contains("missing"), msg);
    }

    @ParameterizedTest
    @CsvSource({"vocab_size", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
            "mamba_num_heads", "mamba_head_dim", "ssm_state_size", "n_groups", "conv_kernel", "chunk_size",
            "intermediate_size", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
            "moe_intermediate_size", "moe_shared_expert_intermediate_size"})
    void nonPositiveSizesAreRejected(String field) {
        for (String bad : List.of("0", "-1")) {
            String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                    MINIMAL.replaceFirst("\"" + field + "\": -?[0-9]+", "\"" + field + "\": " + bad)),
                    field + "=" + bad).getMessage();
            assertTrue(msg.contains(field + " must be > 0"), msg);
        }
    }

    @Test
    void numHiddenLayersMustBePositiveAndMatchThePattern() {
        assertInvalid(c -> c.setNumHiddenLayers(0), "num_hidden_layers");
        assertInvalid(c -> c.setNumHiddenLayers(5), "hybrid_override_pattern", "num_hidden_layers = 5", "6 layers");
        // from config.json, the layer types win as in HF (a warning on stderr, see ConfigParsingTest)
        assertEquals(6, NemotronV3Config.fromJsonString(
                minimalWith("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 7")).getNumHiddenLayers());
        assertInvalid(c -> c.setLayerTypes(new ArrayList<>()), "hybrid_override_pattern");
        assertInvalid(c -> c.setLayerTypes(null), "hybrid_override_pattern");
    }

    @Test
    void sizesOnlyCheckedWhenTheLayerTypeIsUsed() {
        NemotronV3Config c = valid().hybridOverridePattern("M*M");
        c.setMtpLayerTypes(List.of(BlockType.ATTENTION));
        c.setIntermediateSize(0);
        c.setNRoutedExperts(0);
        c.setMoeIntermediateSize(0);
        c.setNGroup(4);
        assertDoesNotThrow(c::validate);
        // ... but an MoE or MLP sublayer in the MTP depth counts
        c.setMtpLayerTypes(List.of(BlockType.ATTENTION, BlockType.MOE));
        assertThrows(IllegalArgumentException.class, c::validate);
        c.setMtpLayerTypes(List.of(BlockType.MLP));
        String msg = assertThrows(IllegalArgumentException.class, c::validate).getMessage();
        assertTrue(msg.contains("intermediate_size"), msg);
    }

    @Test
    void moeLatentSize() {
        assertInvalid(c -> c.setMoeLatentSize(0), "moe_latent_size");
        assertInvalid(c -> c.setMoeLatentSize(-8), "moe_latent_size");
        NemotronV3Config ok = valid();
        ok.setMoeLatentSize(16);
        assertDoesNotThrow(ok::validate);
    }

    @Test
    void divisibility() {
        assertInvalid(c -> c.setNGroups(3), "mamba_num_heads", "n_groups");
        assertInvalid(c -> c.setNumKeyValueHeads(3), "num_attention_heads", "num_key_value_heads");
    }

    @Test
    void topKAtMostExperts() {
        assertInvalid(c -> c.setNumExpertsPerTok(5), "num_experts_per_tok", "n_routed_experts");
        NemotronV3Config ok = valid();
        ok.setNumExpertsPerTok(4);
        assertDoesNotThrow(ok::validate);
    }

    @Test
    void tiedEmbeddingsAreUnsupported() {
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                minimalWith("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true"))).getMessage();
        assertTrue(msg.contains("tie_word_embeddings"), msg);
        assertTrue(msg.contains("unsupported: dl4j-mtp needs a separate lm_head.weight, as in the released"
                + " Nemotron-H checkpoints"), msg);
    }

    @Test
    void activations() {
        assertInvalid(c -> c.setMambaHiddenAct("gelu"), "mamba_hidden_act", "silu", "gelu");
        assertInvalid(c -> c.setMambaHiddenAct(null), "mamba_hidden_act");
        assertInvalid(c -> c.setMlpHiddenAct("silu"), "mlp_hidden_act", "relu2");
    }

    @Test
    void layerNormEpsilon() {
        assertInvalid(c -> c.setLayerNormEpsilon(0), "layer_norm_epsilon");
        assertInvalid(c -> c.setLayerNormEpsilon(-1e-5), "layer_norm_epsilon");
        assertInvalid(c -> c.setLayerNormEpsilon(Double.NaN), "layer_norm_epsilon");
        assertInvalid(c -> c.setLayerNormEpsilon(Double.POSITIVE_INFINITY), "layer_norm_epsilon", "Infinity");
    }

    @Test
    void initializerRange() {
        assertInvalid(c -> c.setInitializerRange(-0.02), "initializer_range", "-0.02");
        assertInvalid(c -> c.setInitializerRange(Double.NaN), "initializer_range", "NaN");
        NemotronV3Config ok = valid();
        ok.setInitializerRange(0);
        assertDoesNotThrow(ok::validate);
    }

    @Test
    void timeStepInitRange() {
        assertInvalid(c -> c.setTimeStepMin(0), "time_step_min (0.0)");
        assertInvalid(c -> c.setTimeStepMin(0.5), "time_step_min (0.5)", "time_step_max (0.1)", "min <= max");
        assertInvalid(c -> c.setTimeStepMax(Double.POSITIVE_INFINITY), "time_step_max (Infinity)");
        assertInvalid(c -> c.setTimeStepFloor(-1e-4), "time_step_floor", "-1.0E-4");
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                minimalWith("\"layer_norm_epsilon\": 1e-05", "\"time_step_min\": -1, \"layer_norm_epsilon\": 1e-05")))
                .getMessage();
        assertTrue(msg.contains("time_step_min (-1.0)"), msg);
    }

    @Test
    void routedScalingFactor() {
        assertInvalid(c -> c.setRoutedScalingFactor(0), "routed_scaling_factor", "> 0", "0.0");
        assertInvalid(c -> c.setRoutedScalingFactor(Double.NaN), "routed_scaling_factor", "NaN");
    }

    @Test
    void mambaWidthsMustFitAnInt() {
        assertInvalid(c -> {
            c.setMambaNumHeads(65536);
            c.setMambaHeadDim(65536);
        }, "mamba_num_heads (65536)", "mamba_head_dim (65536)", "too wide");
    }

    /** MINIMAL has 4 routed experts, top-2. */
    @Test
    void groupLimitedRoutingFields() {
        assertInvalid(c -> c.setNGroup(0), "n_group must be > 0, got 0");
        assertInvalid(c -> c.setNGroup(3), "n_routed_experts (4) must be a multiple of n_group (3)");
        assertInvalid(c -> c.setNGroup(4), "n_group (4) leaves 1 expert per group", "at least 2");
        assertInvalid(c -> c.setTopkGroup(0), "topk_group must be between 1 and n_group (1), got 0");
        assertInvalid(c -> {
            c.setNGroup(2);
            c.setTopkGroup(3);
        }, "topk_group must be between 1 and n_group (2), got 3");
        assertInvalid(c -> {
            c.setNGroup(2);
            c.setNumExpertsPerTok(3);
        }, "num_experts_per_tok (3) must be <= topk_group (1) x experts per group (2");
    }

    @Test
    void groupLimitedRoutingIsAccepted() {
        NemotronV3Config c = valid();
        c.setNGroup(2);
        c.setTopkGroup(1);
        assertDoesNotThrow(c::validate);
        c.setTopkGroup(2);                      // every group chosen: plain top-k
        assertDoesNotThrow(c::validate);
        c.setNumExpertsPerTok(4);
        assertDoesNotThrow(c::validate);
    }

    @Test
    void mtpFields() {
        assertInvalid(c -> c.setNumNextnPredictLayers(-1), "num_nextn_predict_layers");
        assertInvalid(c -> c.setMtpLayerTypes(null), "num_nextn_predict_layers", "mtp_hybrid_override_pattern");
        assertInvalid(c -> c.setMtpLayerTypes(List.of()), "mtp_hybrid_override_pattern", "empty");
        NemotronV3Config noMtp = valid();
        noMtp.setNumNextnPredictLayers(0);
        noMtp.setMtpLayerTypes(null);
        assertDoesNotThrow(noMtp::validate);
    }

    @Test
    void timeStepLimitShape() {
        assertInvalid(c -> c.setTimeStepLimit(new double[] {0.0}), "time_step_limit");
        assertInvalid(c -> c.setTimeStepLimit(null), "time_step_limit");
        assertInvalid(c -> c.setTimeStepLimit(new double[] {Double.NaN, 1.0}), "time_step_limit");
    }

    @Test
    void validationRunsWhenParsing() {
        String msg = assertThrows(IllegalArgumentException.class, () -> NemotronV3Config.fromJsonString(
                minimalWith("\"n_group\": 1", "\"n_group\": 3"))).getMessage();
        assertTrue(msg.contains("n_group"), msg);
    }
}
