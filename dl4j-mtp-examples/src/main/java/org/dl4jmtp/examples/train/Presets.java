package org.dl4jmtp.examples.train;

import org.dl4jmtp.config.NemotronV3Config;

import java.util.Locale;

/**
 * Model presets of the {@code train} command, as HF configs: {@code tiny} (default, trains on 2 CPU cores in minutes;
 * Mamba2, attention and MoE blocks, no dense MLP block, plus MTP) and {@code small} (the {@code bench} command's small
 * model: H=128, 8 layers).
 */
public final class Presets {

    private Presets() {
    }

    public static NemotronV3Config byName(String name) {
        switch (name.toLowerCase(Locale.ROOT)) {
            case "tiny":
                return tiny();
            case "small":
                return small();
            default:
                throw new IllegalArgumentException("Unknown preset '" + name + "': use tiny or small, or --config config.json");
        }
    }

    /** H=64, pattern M*ME (Mamba2, attention, Mamba2, MoE), byte vocabulary, MTP "*E" with 2 physical depths. */
    public static NemotronV3Config tiny() {
        return NemotronV3Config.fromJsonString("{"
                + "\"model_type\": \"nemotron_h\", \"vocab_size\": 256, \"hidden_size\": 64,"
                + "\"hybrid_override_pattern\": \"M*ME\","
                + "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 16,"
                + "\"mamba_num_heads\": 4, \"mamba_head_dim\": 16, \"ssm_state_size\": 16, \"n_groups\": 1,"
                + "\"conv_kernel\": 4, \"chunk_size\": 32,"
                + "\"intermediate_size\": 128,"
                + "\"n_routed_experts\": 4, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 64,"
                + "\"moe_shared_expert_intermediate_size\": 128, \"n_shared_experts\": 1, \"routed_scaling_factor\": 2.5,"
                + "\"norm_topk_prob\": true, \"layer_norm_epsilon\": 1e-5, \"initializer_range\": 0.02,"
                + "\"num_nextn_predict_layers\": 2, \"mtp_hybrid_override_pattern\": \"*E\","
                + "\"bos_token_id\": 1, \"eos_token_id\": 2, \"pad_token_id\": 0}");
    }

    /** The benchmark's small model (preset {@code small} of {@code bench}): H=128, M*MEM*ME, 8 experts top-2, MTP "*E". */
    public static NemotronV3Config small() {
        return NemotronV3Config.fromJsonString("{"
                + "\"model_type\": \"nemotron_h\", \"vocab_size\": 256, \"hidden_size\": 128,"
                + "\"hybrid_override_pattern\": \"M*MEM*ME\","
                + "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 32,"
                + "\"mamba_num_heads\": 4, \"mamba_head_dim\": 32, \"ssm_state_size\": 32, \"n_groups\": 2,"
                + "\"conv_kernel\": 4, \"chunk_size\": 64, \"intermediate_size\": 512,"
                + "\"n_routed_experts\": 8, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 128,"
                + "\"moe_shared_expert_intermediate_size\": 256, \"n_shared_experts\": 1, \"routed_scaling_factor\": 2.5,"
                + "\"norm_topk_prob\": true, \"layer_norm_epsilon\": 1e-5, \"initializer_range\": 0.02,"
                + "\"num_nextn_predict_layers\": 2, \"mtp_hybrid_override_pattern\": \"*E\","
                + "\"bos_token_id\": 1, \"eos_token_id\": 2, \"pad_token_id\": 0}");
    }
}
