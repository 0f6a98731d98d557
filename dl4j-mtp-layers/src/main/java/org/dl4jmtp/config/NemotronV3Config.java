package org.dl4jmtp.config;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import lombok.Data;
import lombok.NoArgsConstructor;
import org.dl4jmtp.attention.AttentionConfig;
import org.dl4jmtp.mamba2.Mamba2Config;

/**
 * The model configuration of a NemotronV3 / Nemotron-H hybrid model: the fields of HF's
 * {@code NemotronHConfig} ({@code config.json}, {@code model_type = "nemotron_h"}) in camelCase,
 * with HF's defaults (docs/model.md, "Configuration").
 *
 * <p><b>Bean rule.</b> DL4J's (shaded) Jackson serialises instances by bean properties inside layer
 * configurations, so every stored field has a getter and a setter (Lombok {@code @Data}) and every derived value
 * is a plain method that is not named {@code getX}/{@code isX} (e.g. {@link #dInner()}). Do not add a stored
 * field without a setter, nor a {@code getX()} for a derived value.
 *
 * <p>Create instances with {@link #fromJson(Path)} / {@link #fromJsonString(String)} (which validate), or with
 * the no-arg constructor and setters followed by {@link #validate()}.
 * {@link #hybridOverridePattern(String)} and {@link #mtpHybridOverridePattern(String)} set layer types from
 * pattern strings.
 */
@Data
@NoArgsConstructor
public class NemotronV3Config {

    /** The only supported {@code model_type}. */
    public static final String MODEL_TYPE = "nemotron_h";

    /** HF's default MTP sublayers when {@code num_nextn_predict_layers > 0} but no MTP pattern is given. */
    public static final List<BlockType> DEFAULT_MTP_LAYER_TYPES = List.of(BlockType.ATTENTION, BlockType.MOE);

    // ---- model ----
    private String modelType = MODEL_TYPE;
    private int vocabSize = 131072;
    private int hiddenSize = 4096;
    /** Number of backbone blocks; must equal {@code layerTypes.size()}. */
    private int numHiddenLayers = 0;
    /** One entry per backbone block ({@code hybrid_override_pattern}). */
    private List<BlockType> layerTypes = new ArrayList<>();

    // ---- attention (no positional encoding) ----
    private int numAttentionHeads = 32;
    private int numKeyValueHeads = 8;
    private int headDim = 128;
    private boolean attentionBias = false;

    // ---- Mamba2 ----
    private int mambaNumHeads = 128;
    private int mambaHeadDim = 64;
    private int ssmStateSize = 128;
    private int nGroups = 8;
    private int convKernel = 4;
    /** Stored for write-back only: d_inner is {@link #dInner()} = nh·P, NOT expand·hidden_size. */
    private int expand = 2;
    private int chunkSize = 128;
    private boolean useConvBias = true;
    /** Bias of the Mamba in_proj/out_proj ({@code use_bias}, alias {@code mamba_proj_bias}). */
    private boolean useBias = false;
    private String mambaHiddenAct = "silu";
    private double timeStepMin = 1e-3;
    private double timeStepMax = 0.1;
    private double timeStepFloor = 1e-4;
    /** Clamp range of dt after softplus; the default (0, +inf) means no clamp. */
    private double[] timeStepLimit = {0.0, Double.POSITIVE_INFINITY};

    // ---- dense MLP ----
    private int intermediateSize = 21504;
    private String mlpHiddenAct = "relu2";
    private boolean mlpBias = false;

    // ---- MoE ----
    private int nRoutedExperts = 8;
    /** HF always builds exactly one shared expert of width {@code moeSharedExpertIntermediateSize}. */
    private int nSharedExperts = 1;
    private int numExpertsPerTok = 2;
    private int moeIntermediateSize = 7688;
    private int moeSharedExpertIntermediateSize = 7688;
    /** LatentMoE width ℓ (Super: 1024); null = no latent projection. */
    private Integer moeLatentSize = null;
    private int nGroup = 1;
    private int topkGroup = 1;
    private double routedScalingFactor = 1.0;
    private boolean normTopkProb = true;

    // ---- norms, init, residual ----
    private double layerNormEpsilon = 1e-5;
    private double initializerRange = 0.02;
    private boolean rescalePrenormResidual = true;
    private boolean residualInFp32 = false;
    private boolean tieWordEmbeddings = false;

    // ---- MTP ----
    /** Number of PHYSICAL MTP depths in the checkpoint (the forward depth count D is a training setting, see {@link MtpConfig}). */
    private int numNextnPredictLayers = 0;
    /** Sublayers of one MTP depth; null if the config has no MTP pattern. */
    private List<BlockType> mtpLayerTypes = null;

    // ---- tokens ----
    private Integer bosTokenId = 1;
    /** {@code eos_token_id}: one id or several (Super: [2, 11]). */
    private List<Integer> eosTokenIds = new ArrayList<>(List.of(2));
    private Integer padTokenId = 0;

    /**
     * Fields this class does not model (e.g. {@code architectures}, {@code torch_dtype}, {@code rope_theta},
     * {@code _fixture}), as plain Java values (Map/List/String/Number/Boolean/null); unused, written back by
     * {@link #toJson()}.
     */
    private Map<String, Object> extraFields = new LinkedHashMap<>();

    // =====================================================================================
    // JSON I/O

    /**
     * Reads and validates an HF {@code config.json}.
     *
     * @throws IOException              if the file cannot be read
     * @throws IllegalArgumentException if the file is not JSON, or the config is invalid or unsupported (the
     *                                  message names the field, prefixed by the path)
     */
    public static NemotronV3Config fromJson(Path configJson) throws IOException {
        return Json.read(configJson);
    }

    /**
     * Parses and validates the text of an HF {@code config.json}; see {@link #fromJson(Path)}.
     *
     * @throws IllegalArgumentException if the text is not JSON, or the config is invalid or unsupported
     */
    public static NemotronV3Config fromJsonString(String json) {
        return Json.parse(json);
    }

    /**
     * @return an equivalent HF {@code config.json} (snake_case keys sorted as HF writes them,
     * {@code hybrid_override_pattern} string, the extra fields, pretty-printed, strict JSON)
     */
    public String toJson() {
        return Json.write(this);
    }

    /** Writes {@link #toJson()} to {@code configJson} atomically (temp file in the same directory, then a move). */
    public void writeJson(Path configJson) throws IOException {
        Json.writeAtomically(toJson(), configJson);
    }

    /** @return a deep copy (lists, arrays and extra fields are copied) */
    public NemotronV3Config copy() {
        // A bean round trip copies every property, which also checks the bean rule above.
        return Json.beanCopy(this);
    }

    /**
     * Sets {@link #getLayerTypes()} and {@link #getNumHiddenLayers()} from a backbone pattern such as
     * {@code "M*ME-M"}.
     *
     * @return this
     */
    public NemotronV3Config hybridOverridePattern(String pattern) {
        List<BlockType> types = MtpLayerPattern.parseBackbone(pattern);
        this.layerTypes = new ArrayList<>(types);
        this.numHiddenLayers = types.size();
        return this;
    }

    /**
     * Sets {@link #getMtpLayerTypes()} from the pattern of one MTP depth such as {@code "*E"}; null clears it.
     *
     * @return this
     */
    public NemotronV3Config mtpHybridOverridePattern(String pattern) {
        this.mtpLayerTypes = pattern == null ? null
                : new ArrayList<>(MtpLayerPattern.parse(pattern, "mtp_hybrid_override_pattern"));
        return this;
    }

    // =====================================================================================
    // Derived values (plain methods: not bean properties)

    /** @return the backbone pattern string, e.g. {@code "M*ME-M"} */
    public String pattern() {
        return layerTypes == null ? null : BlockType.toPattern(layerTypes);
    }

    /** @return the MTP pattern of one depth, e.g. {@code "*E"}, or null if there is none */
    public String mtpPattern() {
        return mtpLayerTypes == null ? null : BlockType.toPattern(mtpLayerTypes);
    }

    /** @return d_inner = mamba_num_heads · mamba_head_dim (NOT expand · hidden_size) */
    public int dInner() {
        return Mamba2Config.of(this).dInner();
    }

    /** @return channels of the Mamba causal conv (x, B, C together): d_inner + 2·G·N */
    public int convDim() {
        return Mamba2Config.of(this).convDim();
    }

    /** @return in_proj output width, split in the order z, x, B, C, dt: 2·d_inner + 2·G·N + nh */
    public int inProjSize() {
        return Mamba2Config.of(this).inProjSize();
    }

    /** @return Mamba heads per B/C group (head h uses group h / this) */
    public int mambaHeadsPerGroup() {
        return Mamba2Config.of(this).mambaHeadsPerGroup();
    }

    /** @return q_proj output width = num_attention_heads · head_dim (not necessarily hidden_size) */
    public int queryWidth() {
        return AttentionConfig.of(this).queryWidth();
    }

    /** @return k_proj / v_proj output width = num_key_value_heads · head_dim */
    public int kvWidth() {
        return AttentionConfig.of(this).kvWidth();
    }

    /** @return query heads sharing one KV head (GQA group size) */
    public int queriesPerKvHead() {
        return AttentionConfig.of(this).queriesPerKvHead();
    }

    /** @return true if routed experts work in a latent space (LatentMoE) */
    public boolean hasLatentMoe() {
        return moeLatentSize != null;   // as MoeConfig.hasLatentMoe
    }

    /** @return input width of the routed experts: moe_latent_size if set, else hidden_size */
    public int expertInputSize() {
        return moeLatentSize != null ? moeLatentSize : hiddenSize;   // as MoeConfig.expertInputSize
    }

    /** @return the number of backbone blocks of {@code type} */
    public int countLayers(BlockType type) {
        return layerTypes == null ? 0 : (int) layerTypes.stream().filter(t -> t == type).count();
    }

    /** @return true if {@code type} occurs in the backbone or in the MTP sublayers */
    public boolean usesBlockType(BlockType type) {
        return (layerTypes != null && layerTypes.contains(type))
                || (mtpLayerTypes != null && mtpLayerTypes.contains(type));
    }

    // =====================================================================================
    // Validation

    /**
     * Checks that this config describes a model dl4j-mtp supports.
     *
     * @throws IllegalArgumentException naming the offending field (HF snake_case name)
     */
    public void validate() {
        Validator.validate(this);
    }

    // =====================================================================================
    // Validation rules

    /** The rules of {@link #validate()}; messages name the HF (snake_case) field. */
    private static final class Validator {

        private Validator() {
        }

        static void validate(NemotronV3Config c) {
            checkModelType(c.getModelType());
            checkLayers(c);
            positive(c.getVocabSize(), "vocab_size");
            positive(c.getHiddenSize(), "hidden_size");
            checkAttention(c);
            checkMamba(c);
            if (c.usesBlockType(BlockType.MLP)) {
                positive(c.getIntermediateSize(), "intermediate_size");
                require("relu2".equals(c.getMlpHiddenAct()),
                        "mlp_hidden_act must be \"relu2\" (relu(x)^2), got " + quoted(c.getMlpHiddenAct()));
            }
            if (c.usesBlockType(BlockType.MOE)) {
                checkMoe(c);
            }
            require(c.getLayerNormEpsilon() > 0 && Double.isFinite(c.getLayerNormEpsilon()),
                    "layer_norm_epsilon must be finite and > 0, got " + c.getLayerNormEpsilon());
            require(c.getInitializerRange() >= 0 && Double.isFinite(c.getInitializerRange()),
                    "initializer_range must be finite and >= 0, got " + c.getInitializerRange());
            require(!c.isTieWordEmbeddings(), "tie_word_embeddings = true is unsupported: dl4j-mtp needs a separate"
                    + " lm_head.weight, as in the released Nemotron-H checkpoints");
            checkMtp(c);
        }

        private static void checkModelType(String modelType) {
            require(modelType != null, "model_type is missing (expected \"" + MODEL_TYPE + "\")");
            require(MODEL_TYPE.equals(modelType),
                    "model_type \"" + modelType + "\" is unsupported (expected \"" + MODEL_TYPE + "\")");
        }

        private static void checkLayers(NemotronV3Config c) {
            List<BlockType> types = c.getLayerTypes();
            require(types != null && !types.isEmpty(), "hybrid_override_pattern (layer types) is empty");
            require(types.stream().allMatch(Objects::nonNull), "hybrid_override_pattern (layer types) contains null");
            positive(c.getNumHiddenLayers(), "num_hidden_layers");
            require(types.size() == c.getNumHiddenLayers(), "hybrid_override_pattern \"" + c.pattern() + "\" has "
                    + types.size() + " layers but num_hidden_layers = " + c.getNumHiddenLayers());
        }

        private static void checkAttention(NemotronV3Config c) {
            positive(c.getNumAttentionHeads(), "num_attention_heads");
            positive(c.getNumKeyValueHeads(), "num_key_value_heads");
            positive(c.getHeadDim(), "head_dim");
            require(c.getNumAttentionHeads() % c.getNumKeyValueHeads() == 0,
                    "num_attention_heads (" + c.getNumAttentionHeads() + ") must be a multiple of num_key_value_heads ("
                            + c.getNumKeyValueHeads() + ")");
        }

        private static void checkMamba(NemotronV3Config c) {
            positive(c.getMambaNumHeads(), "mamba_num_heads");
            positive(c.getMambaHeadDim(), "mamba_head_dim");
            positive(c.getSsmStateSize(), "ssm_state_size");
            positive(c.getNGroups(), "n_groups");
            positive(c.getConvKernel(), "conv_kernel");
            positive(c.getChunkSize(), "chunk_size");
            require(c.getMambaNumHeads() % c.getNGroups() == 0, "mamba_num_heads (" + c.getMambaNumHeads()
                    + ") must be a multiple of n_groups (" + c.getNGroups() + ")");
            require("silu".equals(c.getMambaHiddenAct()),
                    "mamba_hidden_act must be \"silu\", got " + quoted(c.getMambaHiddenAct()));
            // in_proj's width is an int: nh·P and G·N must not overflow it
            require(2L * c.getMambaNumHeads() * c.getMambaHeadDim() + 2L * c.getNGroups() * c.getSsmStateSize()
                            + c.getMambaNumHeads() <= Integer.MAX_VALUE, "mamba_num_heads (" + c.getMambaNumHeads()
                            + "), mamba_head_dim (" + c.getMambaHeadDim() + "), n_groups (" + c.getNGroups()
                            + ") and ssm_state_size (" + c.getSsmStateSize() + ") give an in_proj too wide for an int");
            // dt_bias is initialised log-uniform in [time_step_min, time_step_max], then floored
            require(c.getTimeStepMin() > 0 && c.getTimeStepMin() <= c.getTimeStepMax()
                            && Double.isFinite(c.getTimeStepMax()), "time_step_min (" + c.getTimeStepMin()
                            + ") and time_step_max (" + c.getTimeStepMax() + ") must be finite with 0 < min <= max");
            require(c.getTimeStepFloor() >= 0 && Double.isFinite(c.getTimeStepFloor()),
                    "time_step_floor must be finite and >= 0, got " + c.getTimeStepFloor());
            double[] limit = c.getTimeStepLimit();
            require(limit != null && limit.length == 2 && !Double.isNaN(limit[0]) && !Double.isNaN(limit[1])
                            && limit[0] <= limit[1],
                    "time_step_limit must be [min, max] with min <= max, got " + Arrays.toString(limit));
        }

        private static void checkMoe(NemotronV3Config c) {
            positive(c.getNRoutedExperts(), "n_routed_experts");
            positive(c.getNSharedExperts(), "n_shared_experts");
            positive(c.getNumExpertsPerTok(), "num_experts_per_tok");
            positive(c.getMoeIntermediateSize(), "moe_intermediate_size");
            positive(c.getMoeSharedExpertIntermediateSize(), "moe_shared_expert_intermediate_size");
            if (c.getMoeLatentSize() != null) {
                positive(c.getMoeLatentSize(), "moe_latent_size");
            }
            require(c.getNumExpertsPerTok() <= c.getNRoutedExperts(), "num_experts_per_tok ("
                    + c.getNumExpertsPerTok() + ") must be <= n_routed_experts (" + c.getNRoutedExperts() + ")");
            checkGroupLimitedRouting(c);
            require(c.getRoutedScalingFactor() > 0 && Double.isFinite(c.getRoutedScalingFactor()),
                    "routed_scaling_factor must be finite and > 0, got " + c.getRoutedScalingFactor());
            require("relu2".equals(c.getMlpHiddenAct()),
                    "mlp_hidden_act must be \"relu2\" (the experts are relu^2), got " + quoted(c.getMlpHiddenAct()));
        }

        /** n_group / topk_group (docs/model.md, "MoE"): groups of equal size, k reachable inside the chosen groups. */
        private static void checkGroupLimitedRouting(NemotronV3Config c) {
            int groups = c.getNGroup();
            int chosen = c.getTopkGroup();
            positive(groups, "n_group");
            require(c.getNRoutedExperts() % groups == 0, "n_routed_experts (" + c.getNRoutedExperts()
                    + ") must be a multiple of n_group (" + groups + ")");
            require(chosen >= 1 && chosen <= groups, "topk_group must be between 1 and n_group (" + groups
                    + "), got " + chosen);
            int perGroup = c.getNRoutedExperts() / groups;
            require(groups == 1 || perGroup >= 2, "n_group (" + groups + ") leaves " + perGroup + " expert per group;"
                    + " a group is scored by its two best experts, so each needs at least 2 (n_routed_experts = "
                    + c.getNRoutedExperts() + ")");
            require(c.getNumExpertsPerTok() <= chosen * perGroup, "num_experts_per_tok (" + c.getNumExpertsPerTok()
                    + ") must be <= topk_group (" + chosen + ") x experts per group (" + perGroup + ", n_group = "
                    + groups + ")");
        }

        private static void checkMtp(NemotronV3Config c) {
            int physical = c.getNumNextnPredictLayers();
            require(physical >= 0, "num_nextn_predict_layers must be >= 0, got " + physical);
            List<BlockType> mtp = c.getMtpLayerTypes();
            if (mtp != null) {
                require(!mtp.isEmpty(), "mtp_hybrid_override_pattern (MTP layer types) is empty");
                require(mtp.stream().allMatch(Objects::nonNull),
                        "mtp_hybrid_override_pattern (MTP layer types) contains null");
            }
            require(physical == 0 || mtp != null, "num_nextn_predict_layers = " + physical
                    + " but there are no MTP layer types (mtp_hybrid_override_pattern)");
        }

        private static void positive(int value, String field) {
            require(value > 0, field + " must be > 0, got " + value);
        }

        private static void require(boolean ok, String message) {
            if (!ok) {
                throw new IllegalArgumentException(message);
            }
        }

        private static String quoted(String s) {
            return s == null ? "null" : "\"" + s + "\"";
        }
    }

    // =====================================================================================
    // HF config.json reading and writing

    /**
     * Reads and writes HF {@code config.json} with Jackson's tree model. One instance holds the not yet
     * consumed fields of one document while it is read; whatever is left becomes {@code extraFields}.
     */
    private static final class Json {

        /** Lenient on input: HF itself writes time_step_limit as [0.0, Infinity], which is not strict JSON. */
        private static final JsonMapper MAPPER = JsonMapper.builder()
                .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
                .build();

        /**
         * Written for an infinite time_step_limit bound: a strict JSON number that overflows to infinity
         * in both Python's json module and Jackson.
         */
        private static final BigDecimal JSON_INFINITY = new BigDecimal("1E+309");

        /** Every key the reader consumes (canonical names and aliases); extraFields must not shadow them. */
        private static final Set<String> KNOWN_KEYS = Set.of(
                "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "hybrid_override_pattern",
                "layers_block_type", "layer_types", "num_attention_heads", "num_key_value_heads", "head_dim",
                "attention_head_dim", "attention_bias",
                "mamba_num_heads", "mamba_head_dim", "ssm_state_size", "n_groups", "mamba_n_groups", "conv_kernel",
                "mamba_d_conv", "expand", "mamba_expand", "chunk_size", "mamba_chunk_size", "use_conv_bias",
                "mamba_conv_bias", "use_bias", "mamba_proj_bias", "mamba_hidden_act", "time_step_min",
                "mamba_dt_min", "time_step_max", "mamba_dt_max", "time_step_floor", "mamba_dt_init_floor",
                "time_step_limit", "mamba_dt_limit", "intermediate_size", "mlp_hidden_act", "mlp_bias",
                "n_routed_experts", "num_local_experts", "n_shared_experts", "num_experts_per_tok",
                "moe_intermediate_size", "moe_shared_expert_intermediate_size", "moe_latent_size", "n_group",
                "topk_group", "routed_scaling_factor", "norm_topk_prob", "layer_norm_epsilon", "initializer_range",
                "rescale_prenorm_residual", "residual_in_fp32", "tie_word_embeddings", "num_nextn_predict_layers",
                "mtp_hybrid_override_pattern", "mtp_layers_block_type", "bos_token_id", "eos_token_id",
                "pad_token_id");

        private final ObjectNode rest;
        /** MoE fields given as null, see {@link #moeValue}. */
        private final List<String> nullMoeFields = new ArrayList<>();

        private Json(ObjectNode rest) {
            this.rest = rest;
        }

        static NemotronV3Config read(Path configJson) throws IOException {
            String text = Files.readString(configJson, StandardCharsets.UTF_8);
            try {
                return parse(text);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(configJson + ": " + e.getMessage(), e);
            }
        }

        static NemotronV3Config parse(String json) {
            JsonNode root;
            try {
                root = MAPPER.readTree(json);
            } catch (JsonProcessingException e) {
                JsonLocation at = e.getLocation();
                throw new IllegalArgumentException("config.json is not valid JSON: " + e.getOriginalMessage()
                        + (at != null ? " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")" : ""), e);
            }
            if (root == null || !root.isObject()) {
                throw new IllegalArgumentException("config.json must be a JSON object");
            }
            NemotronV3Config c = new Json(((ObjectNode) root).deepCopy()).readConfig();
            c.validate();
            return c;
        }

        static NemotronV3Config beanCopy(NemotronV3Config c) {
            return MAPPER.convertValue(c, NemotronV3Config.class);
        }

        // ---- reading ----

        private NemotronV3Config readConfig() {
            NemotronV3Config c = new NemotronV3Config();
            c.setModelType(text("model_type", null));
            c.setVocabSize(integer("vocab_size", c.getVocabSize()));
            c.setHiddenSize(integer("hidden_size", c.getHiddenSize()));
            readBackbonePattern(c);

            c.setNumAttentionHeads(integer("num_attention_heads", c.getNumAttentionHeads()));
            // HF: a null num_key_value_heads means multi-head attention
            Integer kvHeads = nullableInteger("num_key_value_heads", c.getNumKeyValueHeads());
            c.setNumKeyValueHeads(kvHeads != null ? kvHeads : c.getNumAttentionHeads());
            c.setHeadDim(integer("head_dim", c.getHeadDim(), "attention_head_dim"));
            c.setAttentionBias(bool("attention_bias", c.isAttentionBias()));

            c.setMambaNumHeads(integer("mamba_num_heads", c.getMambaNumHeads()));
            c.setMambaHeadDim(integer("mamba_head_dim", c.getMambaHeadDim()));
            c.setSsmStateSize(integer("ssm_state_size", c.getSsmStateSize()));
            c.setNGroups(integer("n_groups", c.getNGroups(), "mamba_n_groups"));
            c.setConvKernel(integer("conv_kernel", c.getConvKernel(), "mamba_d_conv"));
            c.setExpand(integer("expand", c.getExpand(), "mamba_expand"));
            c.setChunkSize(integer("chunk_size", c.getChunkSize(), "mamba_chunk_size"));
            c.setUseConvBias(bool("use_conv_bias", c.isUseConvBias(), "mamba_conv_bias"));
            c.setUseBias(bool("use_bias", c.isUseBias(), "mamba_proj_bias"));
            c.setMambaHiddenAct(text("mamba_hidden_act", c.getMambaHiddenAct()));
            c.setTimeStepMin(dbl("time_step_min", c.getTimeStepMin(), "mamba_dt_min"));
            c.setTimeStepMax(dbl("time_step_max", c.getTimeStepMax(), "mamba_dt_max"));
            c.setTimeStepFloor(dbl("time_step_floor", c.getTimeStepFloor(), "mamba_dt_init_floor"));
            c.setTimeStepLimit(timeStepLimit(c.getTimeStepLimit()));

            c.setIntermediateSize(integer("intermediate_size", c.getIntermediateSize()));
            c.setMlpHiddenAct(text(firstPresent("mlp_hidden_act", "hidden_act"), c.getMlpHiddenAct()));
            c.setMlpBias(bool("mlp_bias", c.isMlpBias()));

            c.setNRoutedExperts(moeInteger("n_routed_experts", c.getNRoutedExperts(), "num_local_experts"));
            c.setNSharedExperts(moeInteger("n_shared_experts", c.getNSharedExperts()));
            c.setNumExpertsPerTok(moeInteger("num_experts_per_tok", c.getNumExpertsPerTok()));
            c.setMoeIntermediateSize(moeInteger("moe_intermediate_size", c.getMoeIntermediateSize()));
            c.setMoeSharedExpertIntermediateSize(
                    moeInteger("moe_shared_expert_intermediate_size", c.getMoeSharedExpertIntermediateSize()));
            c.setMoeLatentSize(nullableInteger("moe_latent_size", c.getMoeLatentSize()));
            c.setNGroup(moeInteger("n_group", c.getNGroup()));
            c.setTopkGroup(moeInteger("topk_group", c.getTopkGroup()));
            JsonNode scaling = moeValue("routed_scaling_factor");
            c.setRoutedScalingFactor(scaling == null ? c.getRoutedScalingFactor()
                    : toDouble(scaling, "routed_scaling_factor"));
            JsonNode normTopk = moeValue("norm_topk_prob");
            c.setNormTopkProb(normTopk == null ? c.isNormTopkProb() : toBoolean(normTopk, "norm_topk_prob"));

            c.setLayerNormEpsilon(dbl(firstPresent("layer_norm_epsilon", "rms_norm_eps", "norm_eps"),
                    c.getLayerNormEpsilon()));
            c.setInitializerRange(dbl("initializer_range", c.getInitializerRange()));
            c.setRescalePrenormResidual(bool("rescale_prenorm_residual", c.isRescalePrenormResidual()));
            c.setResidualInFp32(bool("residual_in_fp32", c.isResidualInFp32()));
            c.setTieWordEmbeddings(bool("tie_word_embeddings", c.isTieWordEmbeddings()));

            readMtpPattern(c);
            if (!nullMoeFields.isEmpty() && c.usesBlockType(BlockType.MOE)) {
                throw new IllegalArgumentException(String.join(", ", nullMoeFields) + " must be set (not null):"
                        + " the layer pattern has MoE layers");
            }

            c.setBosTokenId(nullableInteger("bos_token_id", c.getBosTokenId()));
            c.setEosTokenIds(eosTokenIds(c.getEosTokenIds()));
            c.setPadTokenId(nullableInteger("pad_token_id", c.getPadTokenId()));

            c.setExtraFields(remainingFields());
            return c;
        }

        /** The string pattern, the block-type list (either naming scheme), or both if they agree. */
        private void readBackbonePattern(NemotronV3Config c) {
            JsonNode pattern = take("hybrid_override_pattern");
            List<BlockType> fromPattern = isAbsent(pattern) ? null
                    : MtpLayerPattern.parseBackbone(string(pattern, "hybrid_override_pattern"));
            List<BlockType> fromList = blockTypeList(take("layers_block_type", "layer_types"), "layers_block_type",
                    false);
            List<BlockType> types = agree(fromPattern, "hybrid_override_pattern", fromList, "layers_block_type");
            if (types == null) {
                throw new IllegalArgumentException(
                        "hybrid_override_pattern / layers_block_type: config.json has neither; layer types are required");
            }
            c.setLayerTypes(new ArrayList<>(types));
            // Newest HF derives num_hidden_layers from the layer types and only warns about a stale value.
            Integer declared = nullableInteger("num_hidden_layers", null);
            if (declared != null && declared != types.size()) {
                System.err.println("Warning: config.json: num_hidden_layers (" + declared + ") does not match the "
                        + types.size() + " layer types of \"" + BlockType.toPattern(types) + "\"; using "
                        + types.size() + " (as HF does)");
            }
            c.setNumHiddenLayers(types.size());
        }

        /** Like NeMo Automodel: the string first (an empty string counts as absent), then the list, then HF's default. */
        private void readMtpPattern(NemotronV3Config c) {
            c.setNumNextnPredictLayers(integer("num_nextn_predict_layers", 0));
            JsonNode pattern = take("mtp_hybrid_override_pattern");
            String text = isAbsent(pattern) ? "" : string(pattern, "mtp_hybrid_override_pattern");
            List<BlockType> fromPattern = text.isEmpty() ? null
                    : MtpLayerPattern.parse(text, "mtp_hybrid_override_pattern");
            List<BlockType> fromList = blockTypeList(take("mtp_layers_block_type"), "mtp_layers_block_type", true);
            List<BlockType> types = agree(fromPattern, "mtp_hybrid_override_pattern", fromList, "mtp_layers_block_type");
            if (types == null && c.getNumNextnPredictLayers() > 0) {
                types = DEFAULT_MTP_LAYER_TYPES;
            }
            c.setMtpLayerTypes(types == null ? null : new ArrayList<>(types));
        }

        private static List<BlockType> agree(List<BlockType> a, String aName, List<BlockType> b, String bName) {
            if (a != null && b != null && !a.equals(b)) {
                throw new IllegalArgumentException(aName + " \"" + BlockType.toPattern(a) + "\" and " + bName + " (\""
                        + BlockType.toPattern(b) + "\") disagree");
            }
            return a != null ? a : b;
        }

        private static List<BlockType> blockTypeList(JsonNode v, String field, boolean emptyIsAbsent) {
            if (isAbsent(v)) {
                return null;
            }
            if (!v.isArray()) {
                throw new IllegalArgumentException(field + " must be a list of block type names, got " + v);
            }
            if (v.isEmpty()) {
                if (emptyIsAbsent) {
                    return null;
                }
                throw new IllegalArgumentException(field + " is empty");
            }
            List<BlockType> types = new ArrayList<>(v.size());
            for (int i = 0; i < v.size(); i++) {
                JsonNode name = v.get(i);
                try {
                    types.add(BlockType.fromHfName(name.isTextual() ? name.textValue() : name.toString()));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(field + "[" + i + "]: " + e.getMessage(), e);
                }
            }
            return types;
        }

        private double[] timeStepLimit(double[] def) {
            JsonNode v = take("time_step_limit", "mamba_dt_limit");
            if (isAbsent(v)) {
                return def;
            }
            if (!v.isArray() || v.size() != 2) {
                throw new IllegalArgumentException("time_step_limit must be a list of 2 numbers, got " + v);
            }
            return new double[] {limitBound(v.get(0)), limitBound(v.get(1))};
        }

        /** A number, or a string such as "inf", "-Infinity" or "1e-3" (HF's [0.0, Infinity] is not strict JSON). */
        private static double limitBound(JsonNode v) {
            if (v.isNumber()) {
                return v.doubleValue();
            }
            if (v.isTextual()) {
                String s = v.textValue().trim().toLowerCase(Locale.ROOT);
                boolean negative = s.startsWith("-");
                String magnitude = s.startsWith("-") || s.startsWith("+") ? s.substring(1) : s;
                if (magnitude.equals("inf") || magnitude.equals("infinity")) {
                    return negative ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY;
                }
                try {
                    return Double.parseDouble(s);
                } catch (NumberFormatException ignored) {
                    // fall through to the error below
                }
            }
            throw new IllegalArgumentException("time_step_limit entries must be numbers or \"inf\", got " + v);
        }

        private List<Integer> eosTokenIds(List<Integer> def) {
            JsonNode v = take("eos_token_id");
            if (v == null) {
                return new ArrayList<>(def);
            }
            List<Integer> ids = new ArrayList<>();
            if (v.isArray()) {
                for (JsonNode id : v) {
                    ids.add(toInt(id, "eos_token_id"));
                }
            } else if (!v.isNull()) {
                ids.add(toInt(v, "eos_token_id"));
            }
            return ids;
        }

        private Map<String, Object> remainingFields() {
            Map<String, Object> extra = new LinkedHashMap<>();
            rest.fields().forEachRemaining(e -> extra.put(e.getKey(), MAPPER.convertValue(e.getValue(), Object.class)));
            return extra;
        }

        /**
         * The first of {@code keys} present in the document, else the first key. For fields whose older names HF
         * ignores when the newer one is present (e.g. {@code hidden_act}): only the chosen key is consumed, the
         * others stay extra fields.
         */
        private String firstPresent(String... keys) {
            for (String key : keys) {
                if (rest.has(key)) {
                    return key;
                }
            }
            return keys[0];
        }

        /**
         * The value of a MoE field, null if absent or JSON null. Configs without MoE layers may set these to null
         * (Nemotron-H 8B: {@code "n_routed_experts": null}); a null is an error only if a layer is MoE, which
         * {@link #readConfig()} checks once the patterns are read.
         */
        private JsonNode moeValue(String key, String... aliases) {
            JsonNode v = take(key, aliases);
            if (v != null && v.isNull()) {
                nullMoeFields.add(key);
                return null;
            }
            return v;
        }

        private int moeInteger(String key, int def, String... aliases) {
            JsonNode v = moeValue(key, aliases);
            return v == null ? def : toInt(v, key);
        }

        /**
         * Removes {@code key} and its aliases from the document; returns the value (null if none is present).
         * A key and an alias with different values are an error.
         */
        private JsonNode take(String key, String... aliases) {
            JsonNode value = rest.remove(key);
            String from = key;
            for (String alias : aliases) {
                JsonNode other = rest.remove(alias);
                if (other == null) {
                    continue;
                }
                if (value == null) {
                    value = other;
                    from = alias;
                } else if (!sameValue(value, other)) {
                    throw new IllegalArgumentException(key + ": " + from + " = " + value + " but its alias " + alias
                            + " = " + other);
                }
            }
            return value;
        }

        private static boolean sameValue(JsonNode a, JsonNode b) {
            return a.equals(b) || (a.isNumber() && b.isNumber() && a.doubleValue() == b.doubleValue());
        }

        private static boolean isAbsent(JsonNode v) {
            return v == null || v.isNull();
        }

        private int integer(String key, int def, String... aliases) {
            JsonNode v = take(key, aliases);
            return v == null ? def : toInt(v, key);
        }

        /** JSON null is kept as null (e.g. moe_latent_size: null = no LatentMoE). */
        private Integer nullableInteger(String key, Integer def) {
            JsonNode v = take(key);
            if (v == null) {
                return def;
            }
            return v.isNull() ? null : toInt(v, key);
        }

        private double dbl(String key, double def, String... aliases) {
            JsonNode v = take(key, aliases);
            return v == null ? def : toDouble(v, key);
        }

        private boolean bool(String key, boolean def, String... aliases) {
            JsonNode v = take(key, aliases);
            return v == null ? def : toBoolean(v, key);
        }

        private static double toDouble(JsonNode v, String key) {
            if (!v.isNumber()) {
                throw new IllegalArgumentException(key + " must be a number, got " + v);
            }
            return v.doubleValue();
        }

        private static boolean toBoolean(JsonNode v, String key) {
            if (!v.isBoolean()) {
                throw new IllegalArgumentException(key + " must be true or false, got " + v);
            }
            return v.booleanValue();
        }

        /** JSON null gives null, which validate() reports for the fields that need a value. */
        private String text(String key, String def) {
            JsonNode v = take(key);
            if (v == null) {
                return def;
            }
            return v.isNull() ? null : string(v, key);
        }

        private static String string(JsonNode v, String key) {
            if (!v.isTextual()) {
                throw new IllegalArgumentException(key + " must be a string, got " + v);
            }
            return v.textValue();
        }

        private static int toInt(JsonNode v, String key) {
            if (v.isNumber() && v.canConvertToExactIntegral() && v.canConvertToInt()) {
                return v.intValue();
            }
            throw new IllegalArgumentException(key + " must be an integer, got " + v);
        }

        // ---- writing ----

        static String write(NemotronV3Config c) {
            JsonNodeFactory f = MAPPER.getNodeFactory();
            Map<String, JsonNode> out = new TreeMap<>(); // HF writes config.json with sorted keys
            out.put("model_type", f.textNode(c.getModelType()));
            out.put("vocab_size", f.numberNode(c.getVocabSize()));
            out.put("hidden_size", f.numberNode(c.getHiddenSize()));
            if (c.getLayerTypes() != null) {
                out.put("hybrid_override_pattern", f.textNode(c.pattern()));
            }
            out.put("num_hidden_layers", f.numberNode(c.getNumHiddenLayers()));
            out.put("num_attention_heads", f.numberNode(c.getNumAttentionHeads()));
            out.put("num_key_value_heads", f.numberNode(c.getNumKeyValueHeads()));
            out.put("head_dim", f.numberNode(c.getHeadDim()));
            out.put("attention_bias", f.booleanNode(c.isAttentionBias()));
            out.put("mamba_num_heads", f.numberNode(c.getMambaNumHeads()));
            out.put("mamba_head_dim", f.numberNode(c.getMambaHeadDim()));
            out.put("ssm_state_size", f.numberNode(c.getSsmStateSize()));
            out.put("n_groups", f.numberNode(c.getNGroups()));
            out.put("conv_kernel", f.numberNode(c.getConvKernel()));
            out.put("expand", f.numberNode(c.getExpand()));
            out.put("chunk_size", f.numberNode(c.getChunkSize()));
            out.put("use_conv_bias", f.booleanNode(c.isUseConvBias()));
            // Both names, as released configs carry both (HF versions differ in which one they read).
            out.put("use_bias", f.booleanNode(c.isUseBias()));
            out.put("mamba_proj_bias", f.booleanNode(c.isUseBias()));
            out.put("mamba_hidden_act", f.textNode(c.getMambaHiddenAct()));
            out.put("time_step_min", f.numberNode(c.getTimeStepMin()));
            out.put("time_step_max", f.numberNode(c.getTimeStepMax()));
            out.put("time_step_floor", f.numberNode(c.getTimeStepFloor()));
            double[] limit = c.getTimeStepLimit();
            if (limit != null && !(limit.length == 2 && limit[0] == 0.0 && limit[1] == Double.POSITIVE_INFINITY)) {
                ArrayNode a = f.arrayNode();
                for (double bound : limit) {
                    a.add(boundNode(bound));
                }
                out.put("time_step_limit", a);
            }
            out.put("intermediate_size", f.numberNode(c.getIntermediateSize()));
            out.put("mlp_hidden_act", f.textNode(c.getMlpHiddenAct()));
            out.put("mlp_bias", f.booleanNode(c.isMlpBias()));
            out.put("n_routed_experts", f.numberNode(c.getNRoutedExperts()));
            out.put("n_shared_experts", f.numberNode(c.getNSharedExperts()));
            out.put("num_experts_per_tok", f.numberNode(c.getNumExpertsPerTok()));
            out.put("moe_intermediate_size", f.numberNode(c.getMoeIntermediateSize()));
            out.put("moe_shared_expert_intermediate_size", f.numberNode(c.getMoeSharedExpertIntermediateSize()));
            out.put("moe_latent_size", f.numberNode(c.getMoeLatentSize()));
            out.put("n_group", f.numberNode(c.getNGroup()));
            out.put("topk_group", f.numberNode(c.getTopkGroup()));
            out.put("routed_scaling_factor", f.numberNode(c.getRoutedScalingFactor()));
            out.put("norm_topk_prob", f.booleanNode(c.isNormTopkProb()));
            out.put("layer_norm_epsilon", f.numberNode(c.getLayerNormEpsilon()));
            out.put("initializer_range", f.numberNode(c.getInitializerRange()));
            out.put("rescale_prenorm_residual", f.booleanNode(c.isRescalePrenormResidual()));
            out.put("residual_in_fp32", f.booleanNode(c.isResidualInFp32()));
            out.put("tie_word_embeddings", f.booleanNode(c.isTieWordEmbeddings()));
            out.put("num_nextn_predict_layers", f.numberNode(c.getNumNextnPredictLayers()));
            if (c.getMtpLayerTypes() != null) {
                out.put("mtp_hybrid_override_pattern", f.textNode(c.mtpPattern()));
            }
            out.put("bos_token_id", f.numberNode(c.getBosTokenId()));
            out.put("eos_token_id", eosNode(c.getEosTokenIds(), f));
            out.put("pad_token_id", f.numberNode(c.getPadTokenId()));

            if (c.getExtraFields() != null) {
                c.getExtraFields().forEach((key, value) -> {
                    if (KNOWN_KEYS.contains(key)) {
                        throw new IllegalArgumentException(
                                "extraFields must not contain \"" + key + "\", which is a modelled field");
                    }
                    out.put(key, value == null ? f.nullNode() : MAPPER.valueToTree(value));
                });
            }
            ObjectNode root = f.objectNode();
            out.forEach(root::set);
            try {
                return MAPPER.writer(prettyPrinter()).writeValueAsString(root) + "\n";
            } catch (JsonProcessingException e) {
                throw new IllegalStateException("cannot serialise the config", e);
            }
        }

        private static JsonNode boundNode(double bound) {
            if (Double.isNaN(bound)) {
                throw new IllegalArgumentException("time_step_limit contains NaN");
            }
            if (Double.isInfinite(bound)) {
                return MAPPER.getNodeFactory().numberNode(bound > 0 ? JSON_INFINITY : JSON_INFINITY.negate());
            }
            return MAPPER.getNodeFactory().numberNode(bound);
        }

        /** One id is written as a number (as HF does), several as a list, none as null. */
        private static JsonNode eosNode(List<Integer> ids, JsonNodeFactory f) {
            if (ids == null || ids.isEmpty()) {
                return f.nullNode();
            }
            if (ids.size() == 1) {
                return f.numberNode(ids.get(0));
            }
            ArrayNode a = f.arrayNode();
            ids.forEach(a::add);
            return a;
        }

        /** Two-space indentation, one entry per line, "key": value (close to Python's json.dumps(indent=2)). */
        private static DefaultPrettyPrinter prettyPrinter() {
            DefaultIndenter indenter = new DefaultIndenter("  ", "\n");
            return new DefaultPrettyPrinter()
                    .withObjectIndenter(indenter)
                    .withArrayIndenter(indenter)
                    .withSeparators(Separators.createDefaultInstance()
                            .withObjectFieldValueSpacing(Separators.Spacing.AFTER));
        }

        static void writeAtomically(String text, Path target) throws IOException {
            org.dl4jmtp.io.AtomicFiles.writeString(target, text);
        }
    }
}
