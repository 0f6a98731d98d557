package org.dl4jmtp.examples;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.io.SafetensorsDType;
import org.dl4jmtp.io.SafetensorsWriter;
import org.dl4jmtp.layers.FrozenParams;
import org.dl4jmtp.mtp.MtpDepthLayer;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.ndarray.INDArray;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code eval}: the losses of one batch (and optionally every output and gradient, dumped to safetensors). */
@Command(name = "eval", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Losses of one batch: prints one JSON object with loss_main, mtp_per_depth_losses, mtp_loss,"
                + " total_loss, N and mtp_label_counts_per_depth.")
final class EvalCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR",
            description = "Checkpoint directory (config.json + model.safetensors or a sharded index).")
    Path checkpoint;

    @Option(names = "--batch", required = true, paramLabel = "FILE.safetensors",
            description = "input_ids and labels (int64 [B, T]; labels pre-shifted, -100 = ignore); optionally"
                    + " document_ids (int64 [B, T], >= 0: the packed documents of each row, a new one wherever the id"
                    + " changes; each sees only itself, as in train). eval --dump outputs and the tensors"
                    + " of reference case files are ignored; any other tensor is an error.")
    Path batch;

    @Mixin
    MtpOptions mtpOptions = new MtpOptions();

    @Mixin
    RuntimeOptions runtime = new RuntimeOptions();

    @Mixin
    LayerRuntimeOption layerRuntime = new LayerRuntimeOption();

    @Option(names = "--mtp-lambda", paramLabel = "X",
            description = "MTP loss scaling factor lambda (default: ${DEFAULT-VALUE}).",
            defaultValue = "" + MtpConfig.DEFAULT_LOSS_SCALING_FACTOR)
    double lambda;

    @Option(names = "--mtp-norm", paramLabel = "main|depth", defaultValue = "main",
            converter = NormalizationConverter.class,
            description = "Per-depth loss denominator: main = N main labels (NeMo Automodel, default),"
                    + " depth = each depth's own label count (Megatron).")
    MtpLossNormalization normalization;

    @Option(names = "--dtype", paramLabel = "float|double", defaultValue = "float",
            description = "Precision: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    Precision dtype;

    @Option(names = "--dump", paramLabel = "OUT.safetensors",
            description = "Write logits_main, hidden_final, logits_mtp_{d}, mtp_hidden_{d} ([B, T, .], float32).")
    Path dump;

    @Option(names = "--grads",
            description = "With --dump: also write grad.<hf key> = d total_loss / d param for every trainable parameter.")
    boolean grads;

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        runtime.apply(cl);
        if (mtpOptions.depths != null && mtpOptions.depths < 0) {
            throw new ParameterException(cl, "--mtp-depths must be >= 0, got " + mtpOptions.depths);
        }
        if (!(Double.isFinite(lambda) && lambda >= 0)) {
            throw new ParameterException(cl, "--mtp-lambda must be finite and >= 0, got " + lambda);
        }
        if (grads && dump == null) {
            throw new ParameterException(cl, "--grads needs --dump OUT.safetensors");
        }
        if (dump != null) {
            Path parent = dump.toAbsolutePath().getParent();
            if (parent == null || !Files.isDirectory(parent)) {
                throw new UserException("--dump: directory " + parent + " does not exist");
            }
        }

        NemotronV3Config config = CheckpointSupport.readConfig(checkpoint);
        MtpConfig mtp = CheckpointSupport.mtpConfig(config, mtpOptions, lambda, normalization);
        CheckpointSupport.Batch data = CheckpointSupport.readBatch(batch, config.getVocabSize());
        NemotronV3ForCausalLM model = CheckpointSupport.load(checkpoint, config, mtp, dtype.dataType(),
                mtpOptions.allowMissingMtp, layerRuntime.get(cl), cl.getErr());

        MtpLossReport report = model.loss(data.inputIds(), data.labels(), data.documentIds());
        if (dump != null) {
            writeDump(model, data);
        }

        ObjectNode out = Json.object();
        Json.putNumber(out, "loss_main", report.mainLoss());
        ArrayNode perDepth = out.putArray("mtp_per_depth_losses");
        for (int d = 1; d <= report.depths(); d++) {
            Json.addNumber(perDepth, report.depthLosses()[d]);
        }
        Json.putNumber(out, "mtp_loss", report.mtpLoss());
        Json.putNumber(out, "total_loss", report.totalLoss());
        out.put("N", report.labelCounts()[0]);
        ArrayNode counts = out.putArray("mtp_label_counts_per_depth");
        for (int d = 1; d <= report.depths(); d++) {
            counts.add(report.labelCounts()[d]);
        }
        ObjectNode settings = out.putObject("mtp");
        settings.put("depths", mtp.getNumLayers());
        settings.put("physical_depths", mtp.numPhysicalDepths());
        settings.put("repeated", mtp.isUseRepeatedLayer());
        settings.put("pattern", mtp.getLayerPattern());
        settings.put("lambda", mtp.getLossScalingFactor());
        settings.put("normalization", mtp.getLossNormalization() == MtpLossNormalization.PER_DEPTH_COUNT
                ? "depth" : "main");
        out.put("dtype", dtype.toString());
        out.put("runtime", layerRuntime.get(cl).cliName());
        out.putArray("batch_shape").add(data.batchSize()).add(data.length());
        if (dump != null) {
            out.put("dump", dump.toString());
        }
        if (!Double.isFinite(report.totalLoss())) {
            cl.getErr().println("eval: warning: the loss is not finite (no non-ignored labels?); written as null");
        }
        cl.getOut().println(Json.write(out));
        cl.getOut().flush();
        return 0;
    }

    private void writeDump(NemotronV3ForCausalLM model, CheckpointSupport.Batch data) throws java.io.IOException {
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        NemotronV3ForCausalLM.ForwardResult fwd = model.forward(data.inputIds(), data.documentIds());
        tensors.put("logits_main", fwd.mainLogits());
        tensors.put("hidden_final", fwd.hiddenFinal());
        for (int d = 1; d <= fwd.mtpLogits().size(); d++) {
            tensors.put("logits_mtp_" + d, fwd.mtpLogits().get(d - 1));
            tensors.put("mtp_hidden_" + d, fwd.mtpHidden().get(d - 1));
        }
        if (grads) {
            Map<String, Boolean> frozen = frozenParameters(model.graph());
            Map<String, INDArray> gradients;
            PrintStream stdout = System.out;
            System.setOut(new PrintStream(OutputStream.nullOutputStream())); // SameDiff prints every op it differentiates
            try {
                gradients = model.gradients(data.inputIds(), data.labels(), data.documentIds());
            } finally {
                System.setOut(stdout);
            }
            for (Map.Entry<String, INDArray> e : gradients.entrySet()) {
                if (!frozen.getOrDefault(e.getKey(), false)) {
                    tensors.put("grad." + e.getKey(), e.getValue());
                }
            }
        }
        SafetensorsWriter.write(dump, tensors, Map.of("format", "pt"), SafetensorsDType.F32);
    }

    /** HF key → whether it is a frozen buffer (MoE e_score_correction_bias): those have no gradient. */
    static Map<String, Boolean> frozenParameters(ComputationGraph graph) {
        Map<String, Boolean> out = new LinkedHashMap<>();
        for (org.deeplearning4j.nn.api.Layer layer : graph.getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer conf = layer.conf().getLayer();
            int patternLength = conf instanceof MtpDepthLayer depth ? depth.sublayerTypes().size() : 0;
            for (String key : layer.paramTable().keySet()) {
                out.put(HfStateDictAdapter.hfKey(conf.getLayerName(), key, patternLength),
                        conf instanceof FrozenParams frozen && frozen.isFrozenParam(key));
            }
        }
        return out;
    }

    /** {@code --mtp-norm}: {@link MtpLossNormalization#parse(String)} (main, depth and their aliases). */
    static final class NormalizationConverter implements CommandLine.ITypeConverter<MtpLossNormalization> {
        @Override
        public MtpLossNormalization convert(String value) {
            try {
                return MtpLossNormalization.parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }
}
