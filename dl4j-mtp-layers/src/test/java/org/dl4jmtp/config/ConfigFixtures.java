package org.dl4jmtp.config;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/** Locates the shared fixtures (system property {@code dl4jmtp.fixtures}, set by Surefire). */
final class ConfigFixtures {

    private ConfigFixtures() {
    }

    static Path fixturesDir() {
        String prop = System.getProperty("dl4jmtp.fixtures");
        Path dir = prop != null ? Paths.get(prop) : Paths.get("../../shared/fixtures");
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("fixtures directory not found: " + dir.toAbsolutePath()
                    + " (set -Ddl4jmtp.fixtures)");
        }
        return dir;
    }

    static Path tinyHybridConfig() {
        return fixturesDir().resolve("tiny-hybrid").resolve("config.json");
    }

    /** {@code shared/bench/presets.json}, beside {@code shared/fixtures}. */
    static Path presets() {
        return fixturesDir().toAbsolutePath().normalize().getParent().resolve("bench").resolve("presets.json");
    }

    /** A small valid config with every field explicit; tests edit it with string replacement. */
    static final String MINIMAL = "{\n"
            + "  \"model_type\": \"nemotron_h\",\n"
            + "  \"vocab_size\": 97,\n"
            + "  \"hidden_size\": 32,\n"
            + "  \"hybrid_override_pattern\": \"M*ME-M\",\n"
            + "  \"num_hidden_layers\": 6,\n"
            + "  \"num_attention_heads\": 4,\n"
            + "  \"num_key_value_heads\": 2,\n"
            + "  \"head_dim\": 8,\n"
            + "  \"mamba_num_heads\": 4,\n"
            + "  \"mamba_head_dim\": 8,\n"
            + "  \"ssm_state_size\": 16,\n"
            + "  \"n_groups\": 2,\n"
            + "  \"conv_kernel\": 4,\n"
            + "  \"chunk_size\": 8,\n"
            + "  \"intermediate_size\": 48,\n"
            + "  \"n_routed_experts\": 4,\n"
            + "  \"n_shared_experts\": 1,\n"
            + "  \"num_experts_per_tok\": 2,\n"
            + "  \"moe_intermediate_size\": 16,\n"
            + "  \"moe_shared_expert_intermediate_size\": 24,\n"
            + "  \"moe_latent_size\": null,\n"
            + "  \"n_group\": 1,\n"
            + "  \"topk_group\": 1,\n"
            + "  \"routed_scaling_factor\": 2.5,\n"
            + "  \"layer_norm_epsilon\": 1e-05,\n"
            + "  \"tie_word_embeddings\": false,\n"
            + "  \"mamba_hidden_act\": \"silu\",\n"
            + "  \"mlp_hidden_act\": \"relu2\",\n"
            + "  \"num_nextn_predict_layers\": 2,\n"
            + "  \"mtp_hybrid_override_pattern\": \"*E\"\n"
            + "}\n";

    /** {@link #MINIMAL} with the first occurrence of {@code from} replaced (which must exist). */
    static String minimalWith(String from, String to) {
        if (!MINIMAL.contains(from)) {
            throw new IllegalArgumentException("not in MINIMAL: " + from);
        }
        return MINIMAL.replaceFirst(java.util.regex.Pattern.quote(from), java.util.regex.Matcher.quoteReplacement(to));
    }

    /** {@link #MINIMAL} without the line of {@code key}. */
    static String minimalWithout(String key) {
        String json = MINIMAL.replaceAll("(?m)^  \"" + java.util.regex.Pattern.quote(key) + "\": .*\\n", "");
        if (json.equals(MINIMAL)) {
            throw new IllegalArgumentException("not in MINIMAL: " + key);
        }
        // the last entry may now end with a comma
        return json.replaceAll(",\\s*}\\s*$", "\n}\n");
    }
}
