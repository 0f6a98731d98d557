package org.dl4jmtp.examples;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.buffer.DataType;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
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
 * the checkpoint loads into that graph strictly. Exit code 1 when it does not load.
 */
@Command(name = "info", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Configuration summary of a checkpoint: layer pattern, sizes, parameter count of the built"
                + " graph, MTP depths and pattern, checkpoint tensors and whether they load strictly.")
final class InfoCommand implements Callable<Integer> {

    private static final Pattern MTP_LAYER = Pattern.compile("^(?:language_model\\.)?mtp\\.layers\\.(\\d+)\\..*");

    @Spec
    CommandSpec spec;

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR",
            description = "Checkpoint directory (config.json + model.safetensors or a sharded index).")
    Path checkpoint;

    @Option(names = "--json", description = "Print the summary as one JSON object.")
    boolean json;

    @Mixin
    RuntimeOptions runtime = new RuntimeOptions();

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        runtime.apply(cl);
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

        Map<BlockType, Integer> counts = new TreeMap<>();
        for (BlockType t : BlockType.values()) {
            counts.put(t, c.countLayers(t));
        }
        String layerCounts = counts.entrySet().stream().filter(e -> e.getValue() > 0)
                .map(e -> e.getValue() + " " + e.getKey().hfName()).collect(Collectors.joining(", "));

        if (json) {
            ObjectNode out = Json.object();
            out.put("checkpoint", checkpoint.toString());
            out.put("model_type", c.getModelType());
            out.put("pattern", c.pattern());
            out.put("num_hidden_layers", c.getNumHiddenLayers());
            ObjectNode byType = out.putObject("layers_by_type");
            counts.forEach((t, n) -> byType.put(t.hfName(), n));
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
            out.put("moe_intermediate_size", c.getMoeIntermediateSize());
            out.put("moe_shared_expert_intermediate_size", c.getMoeSharedExpertIntermediateSize());
            if (c.getMoeLatentSize() != null) {
                out.put("moe_latent_size", c.getMoeLatentSize());
            } else {
                out.putNull("moe_latent_size");
            }
            out.put("tie_word_embeddings", c.isTieWordEmbeddings());
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
            cl.getOut().println(Json.write(out));
        } else {
            PrintWriter o = cl.getOut();
            row(o, "checkpoint", checkpoint.toString());
            row(o, "model_type", c.getModelType());
            row(o, "pattern", c.pattern() + "  (" + c.getNumHiddenLayers() + " layers: " + layerCounts + ")");
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
                        + ", intermediate " + c.getMoeIntermediateSize() + ", shared "
                        + c.getMoeSharedExpertIntermediateSize() + " x " + c.getNSharedExperts()
                        + ", routed_scaling_factor " + c.getRoutedScalingFactor()
                        + ", latent " + Objects.toString(c.getMoeLatentSize(), "none"));
            }
            row(o, "tie_word_embeddings", String.valueOf(c.isTieWordEmbeddings()));
            row(o, "mtp", MtpConfig.physicalDepthsInCheckpoint(c) + " physical depth(s) (num_nextn_predict_layers)"
                    + (c.mtpPattern() != null ? ", pattern " + c.mtpPattern() + " (" + c.mtpPattern().length()
                    + " sublayers per depth)" : ", no MTP pattern"));
            row(o, "parameters", String.format("%,d (graph; MTP %,d; frozen buffers %,d)", params, mtpParams,
                    frozenParams));
            row(o, "checkpoint tensors", String.format("%d in %d file(s), %,d elements, %s; MTP depths: %s",
                    tensors, files, elements, String.join("/", dtypes), ckptMtpDepths));
            row(o, "loads strictly", strict);
        }
        cl.getOut().flush();
        if (loadProblem != null) {
            cl.getErr().println("info: " + loadProblem);
            cl.getErr().flush();
            return 1;
        }
        return 0;
    }

    private static void row(PrintWriter out, String key, String value) {
        out.printf("%-20s %s%n", key + ":", value);
    }
}
