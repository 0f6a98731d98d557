package org.dl4jmtp.examples;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.config.ParameterCount;
import org.dl4jmtp.examples.bench.Flops;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.buffer.DataType;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * {@code info}: the configuration summary of a checkpoint, the parameter count of the graph built from it and whether
 * the checkpoint loads into that graph strictly (exit code 1 when it does not load); or, with {@code --config}, the
 * summary and the estimates of a {@code config.json} alone, without weights or a graph (instant for any size).
 */
@Command(name = "info", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Configuration summary of a checkpoint: layer pattern, sizes, parameter count of the built"
                + " graph, MTP depths and pattern, checkpoint tensors and whether they load strictly. With --config,"
                + " the summary and the parameter, FLOP and memory estimates of a config.json alone.")
final class InfoCommand implements Callable<Integer> {

    private static final Pattern MTP_LAYER = Pattern.compile("^(?:language_model\\.)?mtp\\.layers\\.(\\d+)\\..*");
    /** Layers per line of the layer table. */
    private static final int TABLE_WIDTH = 10;
    /** Bytes per parameter of the weight dtypes of the memory estimates. */
    private static final List<Map.Entry<String, Integer>> WEIGHT_BYTES = List.of(Map.entry("float32", 4),
            Map.entry("bfloat16", 2));
    /** Training holds weights, gradients and Adam's two moments, all in the weight dtype. */
    private static final int TRAINING_COPIES = 4;

    @Spec
    CommandSpec spec;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source = new Source();

    /** What to describe: a checkpoint (built and loaded) or a config.json alone. */
    static final class Source {
        @Option(names = "--checkpoint", required = true, paramLabel = "DIR",
                description = "Checkpoint directory (config.json + model.safetensors or a sharded index).")
        Path checkpoint;

        @Option(names = "--config", required = true, paramLabel = "FILE",
                description = "A config.json alone: no weights are read and no graph is built.")
        Path config;
    }

    @Option(names = "--json", description = "Print the summary as one JSON object.")
    boolean json;

    @Option(names = "--seq-len", paramLabel = "T", defaultValue = "4096",
            description = "Sequence length of the attention and SSD terms of train_flops_per_token"
                    + " (default: ${DEFAULT-VALUE}).")
    int seqLen;

    @Mixin
    RuntimeOptions runtime = new RuntimeOptions();

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        if (seqLen < 1) {
            throw new CommandLine.ParameterException(cl, "--seq-len must be >= 1, got " + seqLen);
        }
        if (source.config != null) {
            return describeConfig(cl, CheckpointSupport.readConfigFile(source.config));
        }
        runtime.apply(cl);
        Path checkpoint = source.checkpoint;
        NemotronV3Config c = CheckpointSupport.readConfig(checkpoint);
        MtpConfig mtp = CheckpointSupport.mtpConfig(c, new MtpOptions(), null, null);

        // the graph the checkpoint would be loaded into (D = num_nextn_predict_layers, not repeated)
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.create(c, mtp, DataType.FLOAT, 12345);
        ComputationGraph graph = model.graph();
        long params = graph.numParams();
        Map<String, Boolean> frozen = EvalCommand.frozenParameters(graph);
        long mtpParams = 0;
        long frozenParams = 0;
        for (Map.Entry<String, org.nd4j.linalg.api.ndarray.INDArray> e : HfStateDictAdapter.parameters(graph).entrySet()) {
            if (e.getKey().startsWith("mtp.")) {
                mtpParams += e.getValue().length();
            }
            if (frozen.getOrDefault(e.getKey(), false)) {
                frozenParams += e.getValue().length();
            }
        }

        int tensors;
        int files;
        long elements = 0;
        TreeSet<String> dtypes = new TreeSet<>();
        TreeSet<Integer> mtpLayerIndices = new TreeSet<>();
        String strict;
        String loadProblem = null;
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(checkpoint)) {
            tensors = ckpt.size();
            files = ckpt.files().size();
            for (String key : ckpt.keys()) {
                elements += ckpt.info(key).numElements();
                dtypes.add(ckpt.info(key).dtype().name());
                Matcher m = MTP_LAYER.matcher(key);
                if (m.matches()) {
                    mtpLayerIndices.add(Integer.parseInt(m.group(1)));
                }
            }
            try {
                HfStateDictAdapter.load(graph, ckpt, false);
                strict = "yes";
            } catch (IllegalArgumentException e) {
                loadProblem = e.getMessage();
                strict = "no";
                if (mtpLayerIndices.isEmpty() && mtp.enabled()) {
                    try {
                        HfStateDictAdapter.load(graph, ckpt, true);
                        strict = "no (no MTP weights: loads with --allow-missing-mtp)";
                        loadProblem = null;
                    } catch (IllegalArgumentException again) {
                        loadProblem = again.getMessage();
                    }
                }
            }
        }
        int patternLength = mtp.patternLength();
        String ckptMtpDepths = mtpLayerIndices.isEmpty() ? "0"
                : patternLength > 0 && (mtpLayerIndices.last() + 1) % patternLength == 0
                ? String.valueOf((mtpLayerIndices.last() + 1) / patternLength)
                : (mtpLayerIndices.last() + 1) + " MTP sublayers";

        if (json) {
            ObjectNode out = Json.object();
            out.put("checkpoint", checkpoint.toString());
            putConfig(out, c);
            out.put("parameters", params);
            out.put("mtp_parameters", mtpParams);
            out.put("frozen_buffer_parameters", frozenParams);
            out.put("mtp_physical_depths", MtpConfig.physicalDepthsInCheckpoint(c));
            out.put("mtp_pattern", c.mtpPattern());
            out.put("checkpoint_tensors", tensors);
            out.put("checkpoint_files", files);
            out.put("checkpoint_elements", elements);
            out.put("checkpoint_dtypes", String.join(",", dtypes));
            out.put("checkpoint_mtp_depths", ckptMtpDepths);
            out.put("loads_strictly", "yes".equals(strict));
            if (loadProblem != null) {
                out.put("load_problem", loadProblem);
            }
            putEstimates(out, c, mtp);
            cl.getOut().println(Json.write(out));
        } else {
            PrintWriter o = cl.getOut();
            row(o, "checkpoint", checkpoint.toString());
            configRows(o, c);
            row(o, "parameters", String.format("%,d (graph; MTP %,d; frozen buffers %,d)", params, mtpParams,
                    frozenParams));
            row(o, "checkpoint tensors", String.format("%d in %d file(s), %,d elements, %s; MTP depths: %s",
                    tensors, files, elements, String.join("/", dtypes), ckptMtpDepths));
            row(o, "loads strictly", strict);
            estimateRows(o, c, mtp);
        }
        cl.getOut().flush();
        if (loadProblem != null) {
            cl.getErr().println("info: " + loadProblem);
            cl.getErr().flush();
            return 1;
        }
        return 0;
    }

    /** {@code --config}: the summary and the estimates from the configuration alone (no ND4J work at all). */
    private int describeConfig(CommandLine cl, NemotronV3Config c) {
        MtpConfig mtp = CheckpointSupport.mtpConfig(c, new MtpOptions(), null, null);
        if (json) {
            ObjectNode out = Json.object();
            out.put("config", source.config.toString());
            putConfig(out, c);
            out.put("mtp_physical_depths", MtpConfig.physicalDepthsInCheckpoint(c));
            out.put("mtp_pattern", c.mtpPattern());
            putEstimates(out, c, mtp);
            cl.getOut().println(Json.write(out));
        } else {
            PrintWriter o = cl.getOut();
            row(o, "config", source.config.toString());
            configRows(o, c);
            estimateRows(o, c, mtp);
        }
        cl.getOut().flush();
        return 0;
    }

    /** The configuration fields of the JSON summary, and the layer types per layer. */
    private static void putConfig(ObjectNode out, NemotronV3Config c) {
        out.put("model_type", c.getModelType());
        out.put("pattern", c.pattern());
        out.put("num_hidden_layers", c.getNumHiddenLayers());
        ObjectNode byType = out.putObject("layers_by_type");
        layerCounts(c).forEach((t, n) -> byType.put(t.hfName(), n));
        c.getLayerTypes().forEach(t -> out.withArray("layer_types").add(t.hfName()));
        out.put("hidden_size", c.getHiddenSize());
        out.put("vocab_size", c.getVocabSize());
        out.put("num_attention_heads", c.getNumAttentionHeads());
        out.put("num_key_value_heads", c.getNumKeyValueHeads());
        out.put("head_dim", c.getHeadDim());
        out.put("mamba_num_heads", c.getMambaNumHeads());
        out.put("mamba_head_dim", c.getMambaHeadDim());
        out.put("ssm_state_size", c.getSsmStateSize());
        out.put("n_groups", c.getNGroups());
        out.put("intermediate_size", c.getIntermediateSize());
        out.put("n_routed_experts", c.getNRoutedExperts());
        out.put("num_experts_per_tok", c.getNumExpertsPerTok());
        out.put("n_group", c.getNGroup());
        out.put("topk_group", c.getTopkGroup());
        out.put("moe_intermediate_size", c.getMoeIntermediateSize());
        out.put("moe_shared_expert_intermediate_size", c.getMoeSharedExpertIntermediateSize());
        if (c.getMoeLatentSize() != null) {
            out.put("moe_latent_size", c.getMoeLatentSize());
        } else {
            out.putNull("moe_latent_size");
        }
        out.put("tie_word_embeddings", c.isTieWordEmbeddings());
    }

    /**
     * Parameter counts of the config (HF checkpoint layout, buffers excluded), training FLOPs per token and memory:
     * training = weights + gradients + Adam's two moments, all in the weight dtype; inference = weights; activations
     * are not included.
     */
    private void putEstimates(ObjectNode out, NemotronV3Config c, MtpConfig mtp) {
        long total = ParameterCount.total(c);
        out.put("params_total", total);
        out.put("params_mtp", ParameterCount.mtp(c));
        out.put("params_active_per_token", ParameterCount.activePerToken(c));
        out.put("train_flops_per_token", Math.round(Flops.of(c, mtp, seqLen).trainPerToken()));
        out.put("flops_seq_len", seqLen);
        ObjectNode memory = out.putObject("memory_bytes");
        ObjectNode training = memory.putObject("training");
        ObjectNode inference = memory.putObject("inference");
        for (Map.Entry<String, Integer> dtype : WEIGHT_BYTES) {
            training.put(dtype.getKey(), TRAINING_COPIES * total * dtype.getValue());
            inference.put(dtype.getKey(), total * dtype.getValue());
        }
    }

    private void estimateRows(PrintWriter o, NemotronV3Config c, MtpConfig mtp) {
        long total = ParameterCount.total(c);
        row(o, "params (config)", String.format("%,d total (%s), MTP %,d, active per token %,d (%s)", total,
                billions(total), ParameterCount.mtp(c), ParameterCount.activePerToken(c),
                billions(ParameterCount.activePerToken(c))));
        row(o, "train FLOPs/token", String.format("%.4g at T = %d (%s)", Flops.of(c, mtp, seqLen).trainPerToken(),
                seqLen, "6*N_active + 3*F_extra"));
        row(o, "memory, training", memory(total, TRAINING_COPIES) + " (weights + gradients + Adam m, v;"
                + " no activations)");
        row(o, "memory, inference", memory(total, 1) + " (weights)");
    }

    private static void configRows(PrintWriter o, NemotronV3Config c) {
        String layerCounts = layerCounts(c).entrySet().stream().filter(e -> e.getValue() > 0)
                .map(e -> e.getValue() + " " + e.getKey().hfName()).collect(Collectors.joining(", "));
        row(o, "model_type", c.getModelType());
        row(o, "pattern", c.pattern() + "  (" + c.getNumHiddenLayers() + " layers: " + layerCounts + ")");
        layerTable(o, c);
        row(o, "hidden_size", String.valueOf(c.getHiddenSize()));
        row(o, "vocab_size", String.valueOf(c.getVocabSize()));
        if (c.usesBlockType(BlockType.ATTENTION)) {
            row(o, "attention", c.getNumAttentionHeads() + " query heads, " + c.getNumKeyValueHeads()
                    + " kv heads, head_dim " + c.getHeadDim() + " (no positional encoding)");
        }
        if (c.usesBlockType(BlockType.MAMBA)) {
            row(o, "mamba2", c.getMambaNumHeads() + " heads x " + c.getMambaHeadDim() + ", state "
                    + c.getSsmStateSize() + ", " + c.getNGroups() + " groups, conv " + c.getConvKernel()
                    + ", chunk " + c.getChunkSize());
        }
        if (c.usesBlockType(BlockType.MLP)) {
            row(o, "mlp", "intermediate " + c.getIntermediateSize() + " (" + c.getMlpHiddenAct() + ")");
        }
        if (c.usesBlockType(BlockType.MOE)) {
            row(o, "moe", c.getNRoutedExperts() + " routed experts, top-" + c.getNumExpertsPerTok()
                    + (c.getTopkGroup() < c.getNGroup() ? " within the best " + c.getTopkGroup() + " of "
                    + c.getNGroup() + " groups" : "")
                    + ", intermediate " + c.getMoeIntermediateSize() + ", shared "
                    + c.getMoeSharedExpertIntermediateSize() + " x " + c.getNSharedExperts()
                    + ", routed_scaling_factor " + c.getRoutedScalingFactor()
                    + ", latent " + Objects.toString(c.getMoeLatentSize(), "none"));
        }
        row(o, "tie_word_embeddings", String.valueOf(c.isTieWordEmbeddings()));
        row(o, "mtp", MtpConfig.physicalDepthsInCheckpoint(c) + " physical depth(s) (num_nextn_predict_layers)"
                + (c.mtpPattern() != null ? ", pattern " + c.mtpPattern() + " (" + c.mtpPattern().length()
                + " sublayers per depth)" : ", no MTP pattern"));
    }

    /** The type of every backbone layer, {@value #TABLE_WIDTH} to a line, each line starting at its first index. */
    private static void layerTable(PrintWriter o, NemotronV3Config c) {
        row(o, "layers", "M = mamba, * = attention, - = mlp, E = moe");
        String pattern = c.pattern();
        for (int start = 0; start < pattern.length(); start += TABLE_WIDTH) {
            String line = pattern.substring(start, Math.min(pattern.length(), start + TABLE_WIDTH));
            o.printf("%20s %-4d %s%n", "", start, line.chars().mapToObj(ch -> String.valueOf((char) ch))
                    .collect(Collectors.joining(" ")));
        }
    }

    private static Map<BlockType, Integer> layerCounts(NemotronV3Config c) {
        Map<BlockType, Integer> counts = new TreeMap<>();
        for (BlockType t : BlockType.values()) {
            counts.put(t, c.countLayers(t));
        }
        return counts;
    }

    private static String billions(long n) {
        return String.format("%.2fB", n / 1e9);
    }

    private static String memory(long params, int copies) {
        return WEIGHT_BYTES.stream()
                .map(e -> String.format("%.1f GiB %s", copies * params * e.getValue() / (double) (1L << 30),
                        e.getKey()))
                .collect(Collectors.joining(", "));
    }

    private static void row(PrintWriter out, String key, String value) {
        out.printf("%-20s %s%n", key + ":", value);
    }
}
