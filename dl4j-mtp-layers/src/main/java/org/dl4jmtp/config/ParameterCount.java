package org.dl4jmtp.config;

import java.util.List;

/**
 * Parameter counts of a NemotronV3 model from its configuration alone, without building it (instant for any size).
 *
 * <p>Counts every tensor of the checkpoint layout that is a parameter: {@code backbone.*}, the untied
 * {@code lm_head} and the {@code mtp.*} depths ({@code num_nextn_predict_layers} of them). The routers'
 * {@code e_score_correction_bias} is a buffer (HF {@code register_buffer}, untouched by the optimiser) and is
 * not counted. The shapes are those of HF's {@code NemotronHForCausalLM} and of the project's mixers
 * ({@code defineParameters}); {@code ParameterCountTest} checks them against a built graph.
 */
public final class ParameterCount {

    private ParameterCount() {
    }

    /** @return every parameter: backbone, lm_head and the MTP depths */
    public static long total(NemotronV3Config c) {
        return backbone(c) + mtp(c);
    }

    /** @return embeddings, the blocks, the final norm and lm_head (everything but {@code mtp.*}) */
    public static long backbone(NemotronV3Config c) {
        long h = c.getHiddenSize();
        long embeddingsAndLmHead = 2L * c.getVocabSize() * h;
        return embeddingsAndLmHead + blocks(c, c.getLayerTypes()) + h;
    }

    /** @return the {@code mtp.*} parameters: {@code num_nextn_predict_layers} depths of {@link #mtpDepth} */
    public static long mtp(NemotronV3Config c) {
        return c.getNumNextnPredictLayers() * mtpDepth(c);
    }

    /**
     * @return one MTP depth: enorm, hnorm and eh_proj (H × 2H) on its first sublayer, the sublayer blocks, and the
     * final_layernorm on its last sublayer; the depth shares the embeddings and lm_head of the backbone
     */
    public static long mtpDepth(NemotronV3Config c) {
        long h = c.getHiddenSize();
        return 2 * h + 2 * h * h + blocks(c, c.getMtpLayerTypes()) + h;
    }

    /**
     * @return {@link #total} minus the routed experts a token does not use: n_routed_experts − num_experts_per_tok
     * experts in every MoE layer of the backbone and of the MTP depths (embeddings stay counted)
     */
    public static long activePerToken(NemotronV3Config c) {
        long moeLayers = c.countLayers(BlockType.MOE)
                + (long) c.getNumNextnPredictLayers() * count(c.getMtpLayerTypes(), BlockType.MOE);
        if (moeLayers == 0) {
            return total(c);
        }
        long unused = (long) c.getNRoutedExperts() - c.getNumExpertsPerTok();
        return total(c) - moeLayers * unused * routedExpert(c);
    }

    /** @return one block: its pre-norm and its mixer */
    public static long block(NemotronV3Config c, BlockType type) {
        return c.getHiddenSize() + mixer(c, type);
    }

    /** @return the parameters of one mixer of {@code type} */
    public static long mixer(NemotronV3Config c, BlockType type) {
        long h = c.getHiddenSize();
        switch (type) {
            case MAMBA: {
                long nh = c.getMambaNumHeads();
                long conv = c.convDim();
                long n = (long) c.inProjSize() * h          // in_proj
                        + conv * c.getConvKernel()           // conv1d [C, 1, K]
                        + (c.isUseConvBias() ? conv : 0)
                        + 3 * nh                             // dt_bias, A_log, D
                        + c.dInner()                         // gated RMSNorm
                        + (long) c.dInner() * h;             // out_proj
                return n + (c.isUseBias() ? c.inProjSize() + h : 0);
            }
            case ATTENTION: {
                long q = c.queryWidth();
                long kv = c.kvWidth();
                long n = 2 * q * h + 2 * kv * h;             // q, k, v, o
                return n + (c.isAttentionBias() ? q + 2 * kv + h : 0);
            }
            case MLP: {
                long i = c.getIntermediateSize();
                return 2 * i * h + (c.isMlpBias() ? i + h : 0);
            }
            case MOE: {
                long shared = c.getMoeSharedExpertIntermediateSize();
                long latent = c.hasLatentMoe() ? 2L * h * c.getMoeLatentSize() : 0;  // fc1/fc2_latent_proj
                return (long) c.getNRoutedExperts() * h     // router (its correction bias is a buffer)
                        + c.getNRoutedExperts() * routedExpert(c)
                        + 2 * shared * h                     // shared expert up/down
                        + latent;
            }
            default:
                throw new IllegalArgumentException("Unknown block type " + type);
        }
    }

    /** @return one routed expert: up_proj and down_proj between the expert input width and moe_intermediate_size */
    public static long routedExpert(NemotronV3Config c) {
        return 2L * c.expertInputSize() * c.getMoeIntermediateSize();
    }

    private static long blocks(NemotronV3Config c, List<BlockType> types) {
        long n = 0;
        if (types != null) {
            for (BlockType t : types) {
                n += block(c, t);
            }
        }
        return n;
    }

    private static int count(List<BlockType> types, BlockType type) {
        return types == null ? 0 : (int) types.stream().filter(t -> t == type).count();
    }
}
