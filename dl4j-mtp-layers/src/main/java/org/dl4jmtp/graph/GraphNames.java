package org.dl4jmtp.graph;

import org.dl4jmtp.config.MtpConfig;

/**
 * Vertex names of a NemotronV3 {@code ComputationGraph}. Layers holding parameters are named after their HF module,
 * so that {@code layerName + "." + paramKey} is the HF key (see {@code HfStateDictAdapter} for the two exceptions).
 */
public final class GraphNames {

    /** Graph input: token ids [mb, 1, T] stored as floating point. */
    public static final String INPUT_IDS = "input_ids";
    /** The one embedding layer, shared by the main model and every MTP depth. */
    public static final String EMBEDDINGS = "backbone.embeddings";
    public static final String NORM_F = "backbone.norm_f";
    /** The output layer holding {@code lm_head.weight} (shared by all depths) and the loss. */
    public static final String LM_HEAD = "lm_head";
    /** Merge of the main hidden state and every MTP depth's hidden state, the input of {@link #LM_HEAD}. */
    public static final String LM_HEAD_INPUT = "lm_head.input";

    private GraphNames() {
    }

    public static String backboneLayer(int i) {
        return "backbone.layers." + i;
    }

    /** Part {@code part} of the shared embedding output: 0 = main input, d = depth d's rolled input. */
    public static String embeddingPart(int part) {
        return "backbone.embeddings.part." + part;
    }

    /** Prefix of the repeated (weight-tied) MTP depth layer; the physical depth index follows. */
    public static final String MTP_DEPTH_PREFIX = "mtp.depth.";

    /** The repeated MTP depth layer (an {@code MtpDepthLayer} holding HF {@code mtp.layers.0} … {@code P-1}). */
    public static String mtpDepth(int physicalDepth) {
        return MTP_DEPTH_PREFIX + physicalDepth;
    }

    public static String mtpFusionInput(int physicalDepth) {
        return MTP_DEPTH_PREFIX + physicalDepth + ".input";
    }

    /** MTP sublayer {@code index} (HF {@code mtp.layers.{index}}) of a non-repeated MTP: its block. */
    public static String mtpSublayer(int index) {
        return "mtp.layers." + index;
    }

    /** A module of MTP sublayer {@code index}, e.g. {@code enorm}, {@code eh_proj}, {@code final_layernorm}. */
    public static String mtpModule(int index, String module) {
        return mtpSublayer(index) + "." + module;
    }

    /** The input of {@code eh_proj} of sublayer {@code index}: [enorm(embedding) ; hnorm(hidden)]. */
    public static String mtpFusionInputOf(int index) {
        return mtpSublayer(index) + ".fusion";
    }

    /**
     * The vertex holding the hidden states of physical depth {@code p} after {@code final_layernorm}: the repeated
     * layer itself ([mb, D·H, T], all its iterations), or sublayer {@code p·P+P-1}'s {@code final_layernorm}.
     */
    public static String mtpHidden(MtpConfig mtp, int physicalDepth) {
        if (mtp.isUseRepeatedLayer()) {
            return mtpDepth(physicalDepth);
        }
        return mtpModule(mtp.globalSublayerIndex(physicalDepth, mtp.patternLength() - 1), "final_layernorm");
    }
}
