package org.dl4jmtp.model;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.config.ParameterCount;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ParameterCount}, computed from the configuration alone, against the tensors of the built graph in HF layout
 * ({@link HfStateDictAdapter#stateDict}), the routers' correction-bias buffers left out.
 */
class ParameterCountTest {

    private static final String BUFFER_SUFFIX = ".gate.e_score_correction_bias";
    private static final Pattern ROUTED_EXPERT = Pattern.compile(".*\\.mixer\\.experts\\.(\\d+)\\..*");

    /** Every block type in the backbone and in two MTP depths; each variant switches on other optional tensors. */
    private static final String BASE = "{\"model_type\": \"nemotron_h\", \"vocab_size\": 61, \"hidden_size\": 16,"
            + " \"hybrid_override_pattern\": \"M*ME-E\", \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
            + " \"head_dim\": 4, \"mamba_num_heads\": 4, \"mamba_head_dim\": 4, \"ssm_state_size\": 8,"
            + " \"n_groups\": 2, \"conv_kernel\": 3, \"chunk_size\": 4, \"intermediate_size\": 24,"
            + " \"n_routed_experts\": 5, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 6,"
            + " \"moe_shared_expert_intermediate_size\": 10, \"num_nextn_predict_layers\": 2,"
            + " \"mtp_hybrid_override_pattern\": \"*E-\"";

    @ParameterizedTest
    @ValueSource(strings = {
            "",
            ", \"attention_bias\": true, \"mamba_proj_bias\": true, \"use_conv_bias\": false, \"mlp_bias\": true",
            ", \"moe_latent_size\": 8, \"num_nextn_predict_layers\": 1",
            ", \"num_nextn_predict_layers\": 0, \"mtp_hybrid_override_pattern\": null"})
    void countsMatchTheBuiltGraph(String variant) {
        NemotronV3Config c = NemotronV3Config.fromJsonString(BASE + variant + "}");
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.create(c, MtpConfig.fromHf(c), DataType.FLOAT, 1);
        long total = 0;
        long mtp = 0;
        long unusedExperts = 0;
        for (Map.Entry<String, INDArray> e : HfStateDictAdapter.stateDict(model.graph(), true).entrySet()) {
            String key = e.getKey();
            long n = e.getValue().length();
            if (key.endsWith(BUFFER_SUFFIX)) {
                continue;
            }
            total += n;
            if (key.startsWith("mtp.")) {
                mtp += n;
            }
            // by symmetry, the experts numbered k and above stand for the E − k a token does not use
            Matcher expert = ROUTED_EXPERT.matcher(key);
            if (expert.matches() && Integer.parseInt(expert.group(1)) >= c.getNumExpertsPerTok()) {
                unusedExperts += n;
            }
        }
        assertTrue(unusedExperts > 0);
        assertEquals(total, ParameterCount.total(c), "params_total");
        assertEquals(mtp, ParameterCount.mtp(c), "params_mtp");
        assertEquals(total - mtp, ParameterCount.backbone(c), "backbone");
        assertEquals(total - unusedExperts, ParameterCount.activePerToken(c), "params_active_per_token");
    }
}
