package org.dl4jmtp.examples;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.io.SafetensorsTensorInfo;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/** Loading checkpoints and batches for the commands, turning every user mistake into a {@link UserException}. */
public final class CheckpointSupport {

    static final String CONFIG_FILE = "config.json";

    private CheckpointSupport() {
    }

    /** Checks that {@code dir} is a checkpoint directory (it holds {@code config.json}). */
    static Path checkpointDir(Path dir) {
        if (!Files.exists(dir)) {
            throw new UserException("checkpoint directory not found: " + dir);
        }
        if (!Files.isDirectory(dir)) {
            throw new UserException("--checkpoint must be a directory holding config.json and model.safetensors,"
                    + " but " + dir + " is a file");
        }
        if (!Files.isRegularFile(dir.resolve(CONFIG_FILE))) {
            throw new UserException("checkpoint directory " + dir + " holds no " + CONFIG_FILE);
        }
        return dir;
    }

    /** Reads and validates {@code dir/config.json}. */
    static NemotronV3Config readConfig(Path dir) throws IOException {
        return readConfigFile(checkpointDir(dir).resolve(CONFIG_FILE));
    }

    /** Reads and validates an HF {@code config.json}; every problem is a {@link UserException} naming the file. */
    public static NemotronV3Config readConfigFile(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new UserException(Files.exists(file) ? file + " is not a config.json file"
                    : "config file not found: " + file);
        }
        try {
            return NemotronV3Config.fromJson(file);
        } catch (IllegalArgumentException e) {
            String message = e.getMessage() == null ? e.toString() : e.getMessage();
            throw new UserException(message.contains(file.toString()) ? message : file + ": " + message, e);
        }
    }

    /**
     * The MTP settings: the checkpoint's {@code num_nextn_predict_layers} (or the override) and its MTP pattern,
     * λ and the normalisation as given.
     */
    static MtpConfig mtpConfig(NemotronV3Config config, MtpOptions options, Double lambda,
                               org.dl4jmtp.config.MtpLossNormalization normalization) {
        try {
            MtpConfig mtp = MtpConfig.fromHf(config, lambda, options.depths, options.repeated);
            if (normalization != null) {
                mtp.setLossNormalization(normalization);
            }
            mtp.validate();
            return mtp;
        } catch (IllegalArgumentException e) {
            throw new UserException(e.getMessage(), e);
        }
    }

    /**
     * Builds the model and loads the checkpoint into it, strictly (unless MTP weights may be missing). When the MTP
     * settings use fewer physical depths than the checkpoint holds ({@code --mtp-depths} below
     * {@code num_nextn_predict_layers}, 0, or {@code --mtp-repeated}), the whole checkpoint is loaded strictly into a
     * model with all its depths and the first depths are copied into the requested model (a note goes to
     * {@code err}). The loss head reads document ids from the labels, so that {@code eval} can take packed documents.
     */
    static NemotronV3ForCausalLM load(Path dir, NemotronV3Config config, MtpConfig mtp, DataType type,
                                      boolean allowMissingMtp, PrintWriter err) throws IOException {
        return load(dir, config, mtp, type, allowMissingMtp, LayerRuntime.EXPLICIT, err);
    }

    /** As above, the model's layers running {@code runtime}. */
    static NemotronV3ForCausalLM load(Path dir, NemotronV3Config config, MtpConfig mtp, DataType type,
                                      boolean allowMissingMtp, LayerRuntime runtime, PrintWriter err) throws IOException {
        checkpointDir(dir);
        int stored = MtpConfig.physicalDepthsInCheckpoint(config);
        try {
            if (stored < mtp.numPhysicalDepths()) {
                try {
                    return fromPretrained(dir, mtp, type, allowMissingMtp, runtime);
                } catch (IllegalArgumentException e) {
                    throw new UserException(e.getMessage() + "\n  (the checkpoint holds " + stored + " physical MTP"
                            + " depth(s), num_nextn_predict_layers; " + mtp.getNumLayers() + " depths"
                            + (mtp.isUseRepeatedLayer() ? " (repeated)" : "") + " need " + mtp.numPhysicalDepths()
                            + ": use --mtp-depths <= " + stored + " or --mtp-repeated)", e);
                }
            }
            if (stored == mtp.numPhysicalDepths()) {
                return fromPretrained(dir, mtp, type, allowMissingMtp, runtime);
            }
            MtpConfig all = MtpConfig.fromHf(config, mtp.getLossScalingFactor(), stored, false);
            all.setLossNormalization(mtp.getLossNormalization());
            NemotronV3ForCausalLM source = fromPretrained(dir, all, type, allowMissingMtp, runtime);
            NemotronV3ForCausalLM model = NemotronV3ForCausalLM.of(config, mtp, NemotronV3ForCausalLM
                    .graphBuilder(config, mtp, true).dataType(type).seed(12345).runtime(runtime).build());
            Map<String, INDArray> from = HfStateDictAdapter.parameters(source.graph());
            for (Map.Entry<String, INDArray> e : HfStateDictAdapter.parameters(model.graph()).entrySet()) {
                INDArray value = from.get(e.getKey());
                if (value == null || !Arrays.equals(value.shape(), e.getValue().shape())) {
                    throw new UserException("cannot take parameter " + e.getKey() + " of the requested model from"
                            + " the checkpoint's " + stored + " MTP depths");
                }
                e.getValue().assign(value);
            }
            model.rememberSourceDTypes(source.sourceDTypes());
            err.println(mtp.numPhysicalDepths() == 0
                    ? "note: MTP is off: the checkpoint's " + stored + " physical MTP depths are ignored"
                    : "note: using " + mtp.numPhysicalDepths() + " of the checkpoint's " + stored
                    + " physical MTP depths (mtp.layers.0.." + (mtp.totalSublayers() - 1) + "); the others are ignored");
            err.flush();
            return model;
        } catch (IllegalArgumentException e) {
            throw new UserException(e.getMessage(), e);
        }
    }

    private static NemotronV3ForCausalLM fromPretrained(Path dir, MtpConfig mtp, DataType type,
                                                        boolean allowMissingMtp, LayerRuntime runtime) throws IOException {
        return NemotronV3ForCausalLM.fromPretrained(dir, NemotronV3ForCausalLM.LoadOptions.defaults()
                .withMtp(mtp).withDataType(type).withAllowMissingMtp(allowMissingMtp).withRuntime(runtime)
                .withDocumentIdsInLabels(true));     // eval's document_ids keep every depth's targets inside documents
    }

    /**
     * Tensors a batch file may hold besides the batch: what {@code eval --dump --grads} writes and what the reference
     * case files ({@code io.safetensors}) carry. eval ignores them, so a reference case file can be passed as is.
     */
    private static final Pattern IGNORED_TENSORS = Pattern.compile("logits_main|hidden_final|hidden_after_layer_\\d+"
            + "|logits_mtp_\\d+|mtp_hidden_\\d+|mtp_input_ids_\\d+|mtp_targets_\\d+|grad\\..+");

    private static final String DOCUMENT_IDS = "document_ids";

    /** Token ids and pre-shifted labels of a batch file, both [B, T] int64, and its document ids (or null). */
    record Batch(INDArray inputIds, INDArray labels, INDArray documentIds) {
        long batchSize() {
            return inputIds.size(0);
        }

        long length() {
            return inputIds.size(1);
        }
    }

    /**
     * Reads {@code input_ids} and {@code labels} (integer [B, T], the same shape) and checks every id against the
     * vocabulary ({@code labels} may also be -100 = ignore). The optional {@code document_ids} (integer, the shape of
     * {@code input_ids}, >= 0) is checked too. Any other tensor must be one of {@link #IGNORED_TENSORS}: a name the
     * command does not know is an error rather than silently ignored.
     */
    static Batch readBatch(Path file, int vocabSize) throws IOException {
        if (!Files.exists(file)) {
            throw new UserException("batch file not found: " + file);
        }
        if (!Files.isRegularFile(file)) {
            throw new UserException("--batch must be a .safetensors file, but " + file + " is not a regular file");
        }
        try (SafetensorsCheckpoint st = SafetensorsCheckpoint.open(file)) {
            for (String key : st.keys()) {
                if (!key.equals("input_ids") && !key.equals("labels") && !key.equals(DOCUMENT_IDS)
                        && !IGNORED_TENSORS.matcher(key).matches()) {
                    throw new UserException(file + ": unknown tensor '" + key + "' (a batch holds input_ids, labels"
                            + " and optionally document_ids; the only other names allowed are those eval --dump --grads"
                            + " writes and reference case files carry)");
                }
            }
            INDArray ids = integerMatrix(st, file, "input_ids");
            INDArray labels = integerMatrix(st, file, "labels");
            if (!Arrays.equals(ids.shape(), labels.shape())) {
                throw new UserException(file + ": input_ids " + Arrays.toString(ids.shape()) + " and labels "
                        + Arrays.toString(labels.shape()) + " must have the same shape [B, T]");
            }
            checkRange(file, "input_ids", ids, vocabSize, false);
            checkRange(file, "labels", labels, vocabSize, true);
            INDArray documentIds = null;
            if (st.contains(DOCUMENT_IDS)) {
                documentIds = integerMatrix(st, file, DOCUMENT_IDS);
                if (!Arrays.equals(ids.shape(), documentIds.shape())) {
                    throw new UserException(file + ": document_ids must have the shape of input_ids "
                            + Arrays.toString(ids.shape()) + ", got " + Arrays.toString(documentIds.shape()));
                }
                checkRange(file, DOCUMENT_IDS, documentIds, Long.MAX_VALUE, false);
            }
            return new Batch(ids, labels, documentIds);
        }
    }

    private static INDArray integerMatrix(SafetensorsCheckpoint st, Path file, String key) {
        if (!st.contains(key)) {
            List<String> keys = new ArrayList<>(st.keys());
            String held = keys.size() <= 8 ? keys.toString()
                    : keys.subList(0, 8).toString().replace("]", ", ... (" + keys.size() + " tensors)]");
            throw new UserException(file + " holds no tensor '" + key + "' (a batch needs 'input_ids' and 'labels',"
                    + " int64 [B, T]; it holds " + held + ")");
        }
        SafetensorsTensorInfo info = st.info(key);
        if (info.dtype().isFloatingPoint() || info.dtype() == org.dl4jmtp.io.SafetensorsDType.BOOL) {
            throw new UserException(file + ": '" + key + "' must hold integers (expected I64), got " + info.dtype());
        }
        if (info.rank() != 2 || info.shape()[0] < 1 || info.shape()[1] < 1) {
            throw new UserException(file + ": '" + key + "' must be a non-empty [B, T] matrix, got shape "
                    + Arrays.toString(info.shape()));
        }
        return st.get(key).castTo(DataType.LONG);
    }

    /** Every value in [0, bound), or -100 when {@code allowIgnore}; the vocabulary size unless bound is unlimited. */
    private static void checkRange(Path file, String key, INDArray a, long bound, boolean allowIgnore) {
        long[] values = a.dup('c').data().asLong();
        long t = a.size(1);
        for (int i = 0; i < values.length; i++) {
            long v = values[i];
            if (!(allowIgnore && v == -100) && (v < 0 || v >= bound)) {
                throw new UserException(file + ": " + key + "[" + (i / t) + ", " + (i % t) + "] = " + v
                        + " is out of range: " + (bound == Long.MAX_VALUE ? "ids must be >= 0"
                        : "token ids must lie in [0, " + bound + ") (vocab_size)"
                        + (allowIgnore ? " or be -100 (ignore)" : "")));
            }
        }
    }
}
