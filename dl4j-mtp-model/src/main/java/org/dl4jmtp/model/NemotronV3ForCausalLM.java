package org.dl4jmtp.model;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.MergeVertex;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.generate.CachedGreedyDecoder;
import org.dl4jmtp.generate.CachedNemotronV3;
import org.dl4jmtp.generate.FullRecomputeDecoder;
import org.dl4jmtp.generate.GenerationResult;
import org.dl4jmtp.generate.Sampler;
import org.dl4jmtp.generate.TokenDecoder;
import org.dl4jmtp.graph.DocumentMergeVertex;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.graph.NemotronV3GraphBuilder;
import org.dl4jmtp.io.HfCheckpointWriter;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.io.SafetensorsDType;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.layers.Runtimes;
import org.dl4jmtp.layers.TokenEmbeddingLayer;
import org.dl4jmtp.losses.MtpLossLayer;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossReporting;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

/**
 * A NemotronV3 causal LM with MTP heads, in three lines:
 * <pre>
 * var model = NemotronV3ForCausalLM.fromPretrained(dir, LoadOptions.defaults());
 * var out = model.forward(inputIds);                 // main logits, per-depth logits, hidden states
 * var losses = model.loss(inputIds, labels);         // total, main and per-depth losses, counts
 * var tokens = model.generate(promptIds, 32, Sampler.of(0.8, 40, 42)).tokens();   // or Sampler.greedy()
 * </pre>
 * {@link #graph()} is an ordinary DL4J {@link ComputationGraph} (fit, listeners, ModelSerializer);
 * {@link #save(Path, boolean)} writes an HF checkpoint ({@code config.json} + {@code model.safetensors}).
 */
public final class NemotronV3ForCausalLM {

    private final NemotronV3Config config;
    private final MtpConfig mtp;
    private final ComputationGraph graph;
    /** HF key → the dtype the tensor had in the checkpoint it was loaded from; absent keys save as float32. */
    private final Map<String, SafetensorsDType> sourceDTypes = new java.util.concurrent.ConcurrentHashMap<>();

    private NemotronV3ForCausalLM(NemotronV3Config config, MtpConfig mtp, ComputationGraph graph) {
        this.config = config;
        this.mtp = mtp;
        this.graph = graph;
    }

    /** How to build or load a model: MTP training settings, precision and the MTP-weights policy. */
    public record LoadOptions(MtpConfig mtp, DataType dataType, boolean allowMissingMtp, long seed, LayerRuntime runtime,
                              boolean documentIdsInLabels) {

        public LoadOptions {
            Objects.requireNonNull(runtime, "runtime");
        }

        /** The options before {@link #documentIdsInLabels} existed: labels [B, 1, T]. */
        public LoadOptions(MtpConfig mtp, DataType dataType, boolean allowMissingMtp, long seed, LayerRuntime runtime) {
            this(mtp, dataType, allowMissingMtp, seed, runtime, false);
        }

        /** The options before the runtime existed: the explicit runtime. */
        public LoadOptions(MtpConfig mtp, DataType dataType, boolean allowMissingMtp, long seed) {
            this(mtp, dataType, allowMissingMtp, seed, LayerRuntime.EXPLICIT);
        }

        /** D = the checkpoint's num_nextn_predict_layers, not repeated, λ = 0.1, float32, the explicit runtime. */
        public static LoadOptions defaults() {
            return new LoadOptions(null, DataType.FLOAT, false, 12345, LayerRuntime.EXPLICIT);
        }

        public LoadOptions withMtp(MtpConfig mtp) {
            return new LoadOptions(mtp, dataType, allowMissingMtp, seed, runtime, documentIdsInLabels);
        }

        public LoadOptions withDataType(DataType dataType) {
            return new LoadOptions(mtp, dataType, allowMissingMtp, seed, runtime, documentIdsInLabels);
        }

        /** Accept a checkpoint without {@code mtp.*} weights: the MTP depths start from a fresh initialisation. */
        public LoadOptions withAllowMissingMtp(boolean allow) {
            return new LoadOptions(mtp, dataType, allow, seed, runtime, documentIdsInLabels);
        }

        /** Which computation the graph's layers run ({@link LayerRuntime#EXPLICIT} by default). */
        public LoadOptions withRuntime(LayerRuntime runtime) {
            return new LoadOptions(mtp, dataType, allowMissingMtp, seed, runtime, documentIdsInLabels);
        }

        /**
         * A loss head that reads document ids from the labels ([B, 2, T], as {@code train} builds it), so that
         * {@link #loss(INDArray, INDArray, INDArray)} can keep every MTP depth's targets inside their documents.
         */
        public LoadOptions withDocumentIdsInLabels(boolean documentIdsInLabels) {
            return new LoadOptions(mtp, dataType, allowMissingMtp, seed, runtime, documentIdsInLabels);
        }
    }

    /** Wraps a graph built by {@link #graphBuilder} (or restored with ModelSerializer) for {@code config} and {@code mtp}. */
    public static NemotronV3ForCausalLM of(NemotronV3Config config, MtpConfig mtp, ComputationGraph graph) {
        return new NemotronV3ForCausalLM(config, mtp, graph);
    }

    /** A freshly initialised model on the explicit runtime. */
    public static NemotronV3ForCausalLM create(NemotronV3Config config, MtpConfig mtp, DataType dataType, long seed) {
        return create(config, mtp, dataType, seed, LayerRuntime.EXPLICIT);
    }

    /** A freshly initialised model whose layers run {@code runtime}. */
    public static NemotronV3ForCausalLM create(NemotronV3Config config, MtpConfig mtp, DataType dataType, long seed,
                                              LayerRuntime runtime) {
        return new NemotronV3ForCausalLM(config, mtp,
                graphBuilder(config, mtp).dataType(dataType).seed(seed).runtime(runtime).build());
    }

    /** The graph builder with the MTP loss head configured for {@code mtp}; labels [mb, 1, T]. */
    public static NemotronV3GraphBuilder graphBuilder(NemotronV3Config config, MtpConfig mtp) {
        return graphBuilder(config, mtp, false);
    }

    /**
     * The graph builder with the MTP loss head configured for {@code mtp}; with {@code documentIdsInLabels} the labels
     * are [mb, 2, T] with document ids in channel 1, and no depth's target crosses a document boundary.
     */
    public static NemotronV3GraphBuilder graphBuilder(NemotronV3Config config, MtpConfig mtp, boolean documentIdsInLabels) {
        return new NemotronV3GraphBuilder(config).mtp(mtp).head(new MtpLossLayer.Builder()
                .hiddenSize(config.getHiddenSize()).vocabSize(config.getVocabSize())
                .initializerRange(config.getInitializerRange())
                .documentIdsInLabels(documentIdsInLabels)
                .mtp(mtp).build());
    }

    /** Loads {@code dir/config.json} and {@code dir/model.safetensors} (or a sharded index). */
    public static NemotronV3ForCausalLM fromPretrained(Path dir, LoadOptions options) throws IOException {
        NemotronV3Config config = NemotronV3Config.fromJson(dir.resolve("config.json"));
        MtpConfig mtp = options.mtp() != null ? options.mtp() : MtpConfig.fromHf(config);
        NemotronV3ForCausalLM model = new NemotronV3ForCausalLM(config, mtp,
                graphBuilder(config, mtp, options.documentIdsInLabels()).dataType(options.dataType())
                        .seed(options.seed()).runtime(options.runtime()).build());
        try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(dir)) {
            HfStateDictAdapter.load(model.graph, checkpoint, options.allowMissingMtp());
            model.rememberSourceDTypes(HfStateDictAdapter.sourceDTypes(checkpoint));
        }
        return model;
    }

    /**
     * How to save: the floating-point dtype of every tensor ({@code null}: each tensor's source dtype, see
     * {@link #sourceDTypes()}) and the largest data size of one safetensors shard.
     */
    public record SaveOptions(SafetensorsDType dtype, long maxShardBytes) {

        public SaveOptions {
            if (dtype != null && dtype != SafetensorsDType.F32 && dtype != SafetensorsDType.BF16
                    && dtype != SafetensorsDType.F16) {
                throw new IllegalArgumentException("save dtype must be float32, bfloat16 or float16, got " + dtype);
            }
            if (maxShardBytes < 1) {
                throw new IllegalArgumentException("max shard size must be at least 1 byte, got " + maxShardBytes);
            }
        }

        /** Source dtypes, 5 GB shards. */
        public static SaveOptions defaults() {
            return new SaveOptions(null, HfCheckpointWriter.DEFAULT_MAX_SHARD_BYTES);
        }

        /** Every tensor as {@code dtype} (F32, BF16 or F16; null = source dtypes). */
        public SaveOptions withDType(SafetensorsDType dtype) {
            return new SaveOptions(dtype, maxShardBytes);
        }

        public SaveOptions withMaxShardBytes(long maxShardBytes) {
            return new SaveOptions(dtype, maxShardBytes);
        }
    }

    /**
     * Writes {@code config.json} and {@code model.safetensors} (exact HF keys) into {@code dir}, every tensor in its
     * source dtype ({@link #sourceDTypes()}: the dtype it had in the checkpoint it was loaded from, float32 for a
     * fresh model), sharded above 5 GB. Without MTP, {@code num_nextn_predict_layers} is written as 0 and no
     * {@code mtp.*} tensor is saved. See {@link #save(Path, boolean, SaveOptions)}.
     */
    public void save(Path dir, boolean includeMtp) throws IOException {
        save(dir, includeMtp, SaveOptions.defaults());
    }

    /**
     * As {@link #save(Path, boolean)}, with an explicit dtype and shard size. BF16/F16 are rounded from the float
     * parameters to nearest, ties to even, so that a tensor loaded from BF16 and not changed is written back with the
     * same bits. A state dict over {@code maxShardBytes} is written as {@code model-0000i-of-0000N.safetensors} +
     * {@code model.safetensors.index.json}; the whole save is atomic ({@link HfCheckpointWriter}) and weight files of
     * an earlier save in {@code dir} that the new layout does not use are removed.
     *
     * @return the files written and the stale weight files removed
     */
    public HfCheckpointWriter.Result save(Path dir, boolean includeMtp, SaveOptions options) throws IOException {
        Objects.requireNonNull(options, "options");
        NemotronV3Config saved = config.copy();
        saved.setNumNextnPredictLayers(includeMtp && mtp.enabled() ? mtp.numPhysicalDepths() : 0);
        if (!includeMtp || !mtp.enabled()) {
            saved.setMtpLayerTypes(null);
        }
        Map<String, SafetensorsDType> sources = Map.copyOf(sourceDTypes);
        SafetensorsDType override = options.dtype();
        return HfCheckpointWriter.write(dir, HfStateDictAdapter.stateDict(graph, includeMtp), Map.of("format", "pt"),
                key -> override != null ? override : saveDType(sources.get(key)), options.maxShardBytes(),
                Map.of("config.json", saved::writeJson));
    }

    /** F32, F16, BF16 and F64 sources keep their dtype; anything else (or unknown) is saved as F32. */
    private static SafetensorsDType saveDType(SafetensorsDType source) {
        return source != null && source.isFloatingPoint() ? source : SafetensorsDType.F32;
    }

    /** HF key → dtype each tensor had in the checkpoint it was loaded from (empty for a fresh model). */
    public Map<String, SafetensorsDType> sourceDTypes() {
        return java.util.Collections.unmodifiableMap(new TreeMap<>(sourceDTypes));
    }

    /**
     * Records source dtypes for {@link #save(Path, boolean)} (e.g. after copying parameters from a loaded model);
     * entries for keys the model does not have are ignored on save.
     */
    public void rememberSourceDTypes(Map<String, SafetensorsDType> dtypes) {
        sourceDTypes.putAll(dtypes);
    }

    /** Logits and hidden states of one forward pass, all [B, T, ·]; index d-1 of the lists is MTP depth d. */
    public record ForwardResult(INDArray mainLogits, INDArray hiddenFinal, List<INDArray> mtpLogits,
                                List<INDArray> mtpHidden) {
    }

    /** Full forward (inference mode) over token ids [B, T]. */
    public ForwardResult forward(INDArray inputIds) {
        return forward(inputIds, null);
    }

    /**
     * Full forward over token ids [B, T] holding packed documents: {@code documentIds} [B, T] (a new document wherever
     * the id changes along a row; null: one per row). Every position sees only its own document, in the backbone and
     * in every MTP depth, whose inputs stay inside the document (docs/model.md, "Packed documents").
     */
    public ForwardResult forward(INDArray inputIds, INDArray documentIds) {
        DataType type = graph.getConfiguration().getDataType();
        INDArray ids = TokenIds.toGraphInput(inputIds, config.getVocabSize(), type);
        Map<String, INDArray> activations;
        try {
            graph.setLayerMaskArrays(documentMasks(documentIds, ids), null);
            activations = graph.feedForward(new INDArray[]{ids}, false, false);
        } finally {
            graph.clearLayerMaskArrays();
        }
        INDArray weight = headWeight();
        INDArray hiddenFinal = timeMajor(activations.get(GraphNames.NORM_F));
        List<INDArray> mtpHidden = new ArrayList<>();
        int h = config.getHiddenSize();
        for (int p = 0; p < (mtp.enabled() ? mtp.numPhysicalDepths() : 0); p++) {
            INDArray depthOut = activations.get(GraphNames.mtpHidden(mtp, p));
            for (int it = 0; it < depthOut.size(1) / h; it++) {
                mtpHidden.add(timeMajor(depthOut.get(org.nd4j.linalg.indexing.NDArrayIndex.all(),
                        org.nd4j.linalg.indexing.NDArrayIndex.interval((long) it * h, (long) (it + 1) * h),
                        org.nd4j.linalg.indexing.NDArrayIndex.all())));
            }
        }
        List<INDArray> mtpLogits = new ArrayList<>();
        for (INDArray hidden : mtpHidden) {
            mtpLogits.add(logits(hidden, weight));
        }
        return new ForwardResult(logits(hiddenFinal, weight), hiddenFinal, mtpLogits, mtpHidden);
    }

    /**
     * Up to {@code maxNewTokens} tokens after the prompt, each picked by the sampler. On the explicit runtime this is
     * the cached path ({@link CachedNemotronV3}: Mamba states and KV cache instead of a full forward per step); on the
     * SameDiff runtime every step is a full forward pass through the graph's SameDiff layers.
     */
    public GenerationResult generate(int[] promptIds, int maxNewTokens, Sampler sampler) {
        return generate(promptIds, maxNewTokens, sampler, false);
    }

    /** As {@link #generate(int[], int, Sampler)}; with stopAtEos it ends after the first of {@link #eosTokenIds()}. */
    public GenerationResult generate(int[] promptIds, int maxNewTokens, Sampler sampler, boolean stopAtEos) {
        Set<Integer> stops = stopAtEos ? eosTokenIds() : Set.of();
        return decoder(sampler).generate(promptIds, maxNewTokens, stops);
    }

    /** The decoder {@link #generate} uses: cached on the explicit runtime, full recompute on the SameDiff one. */
    public TokenDecoder decoder(Sampler sampler) {
        return runtime() == LayerRuntime.SAMEDIFF
                ? new FullRecomputeDecoder(this, sampler)
                : new CachedGreedyDecoder(CachedNemotronV3.of(this), sampler);
    }

    /** The runtime of the graph's layers (null if a hand-assembled graph mixes them). */
    public LayerRuntime runtime() {
        return Runtimes.of(graph.getConfiguration());
    }

    /** The config's eos_token_id (empty when it has none). */
    public Set<Integer> eosTokenIds() {
        return config.getEosTokenIds() == null ? Set.of() : Set.copyOf(config.getEosTokenIds());
    }

    /** Total, main and per-depth losses of a batch (input ids and pre-shifted labels [B, T], -100 = ignore). */
    public MtpLossReport loss(INDArray inputIds, INDArray labels) {
        return loss(inputIds, labels, null);
    }

    /**
     * {@link #loss(INDArray, INDArray)} of packed documents ({@code documentIds} [B, T], null: one per row; see
     * {@link #forward(INDArray, INDArray)}). With MTP depths the loss head must read document ids
     * ({@link LoadOptions#withDocumentIdsInLabels}), so that no depth's target crosses a document boundary.
     */
    public MtpLossReport loss(INDArray inputIds, INDArray labels, INDArray documentIds) {
        graph.score(batch(inputIds, labels, documentIds), false);
        return lossLayer().lastReport();
    }

    /** d total_loss / d parameter for every parameter, by HF key, and the losses of the batch. */
    public Map<String, INDArray> gradients(INDArray inputIds, INDArray labels) {
        return gradients(inputIds, labels, null);
    }

    /** {@link #gradients(INDArray, INDArray)} of packed documents, as {@link #loss(INDArray, INDArray, INDArray)}. */
    public Map<String, INDArray> gradients(INDArray inputIds, INDArray labels, INDArray documentIds) {
        MultiDataSet batch = batch(inputIds, labels, documentIds);
        graph.setInputs(batch.getFeatures());
        graph.setLabels(batch.getLabels());
        try {
            graph.setLayerMaskArrays(batch.getFeaturesMaskArrays(), null);
            graph.computeGradientAndScore();
        } finally {
            graph.clearLayerMaskArrays();
        }
        Map<String, INDArray> byVariable = graph.gradient().gradientForVariable();
        Map<String, INDArray> out = new TreeMap<>();
        long minibatch = inputIds.size(0);   // DL4J's updater divides the raw gradient by the minibatch size
        HfStateDictAdapter.dl4jVariableNames(graph).forEach((hf, variable) -> out.put(hf, byVariable.get(variable).div(minibatch)));
        return out;
    }

    private MultiDataSet batch(INDArray inputIds, INDArray labels, INDArray documentIds) {
        DataType type = graph.getConfiguration().getDataType();
        INDArray ids = TokenIds.toGraphInput(inputIds, config.getVocabSize(), type);
        boolean headReadsDocuments = lossSettings().isDocumentIdsInLabels();
        if (documentIds != null && !headReadsDocuments && mtp.enabled()) {
            throw new IllegalArgumentException("This model's loss head does not read document ids, so MTP targets "
                    + "would cross document boundaries: load or build it with document ids in the labels "
                    + "(LoadOptions.withDocumentIdsInLabels(true), or graphBuilder(config, mtp, true) as train does)");
        }
        INDArray lab = headReadsDocuments
                ? TokenIds.toGraphLabels(labels, documentIds, config.getVocabSize(), type)
                : TokenIds.toGraphLabels(labels, config.getVocabSize(), type);
        return new MultiDataSet(new INDArray[]{ids}, new INDArray[]{lab}, documentMasks(documentIds, ids), null);
    }

    /** The graph's feature masks for {@code documentIds} (null when there are none). */
    private INDArray[] documentMasks(INDArray documentIds, INDArray graphIds) {
        if (documentIds == null) {
            return null;
        }
        requireDocumentSupport();
        return new INDArray[]{TokenIds.documentMask(documentIds, graphIds.size(0), graphIds.size(2),
                graph.getConfiguration().getDataType())};
    }

    /**
     * Graphs built before document isolation multiply the embeddings by their input mask (DL4J's embedding layer)
     * and OR the masks at their joins: refused rather than silently wrong.
     */
    private void requireDocumentSupport() {
        ComputationGraphConfiguration conf = graph.getConfiguration();
        org.deeplearning4j.nn.conf.layers.Layer layer = graph.getLayer(GraphNames.EMBEDDINGS).conf().getLayer();
        if (layer instanceof org.deeplearning4j.nn.conf.layers.misc.FrozenLayer) {
            layer = ((org.deeplearning4j.nn.conf.layers.misc.FrozenLayer) layer).getLayer();   // --train-only mtp
        }
        boolean embedding = layer instanceof TokenEmbeddingLayer;
        boolean joins = conf.getVertices().values().stream().noneMatch(v -> v instanceof MergeVertex
                && !(v instanceof DocumentMergeVertex));
        if (!embedding || !joins) {
            throw new IllegalStateException("This graph predates document isolation (its embedding or joins would "
                    + "mix document ids into the activations); restore it with GraphZips.restore, which upgrades it");
        }
    }

    private MtpLossLayer lossSettings() {
        return (MtpLossLayer) graph.getLayer(GraphNames.LM_HEAD).conf().getLayer();
    }

    private MtpLossReporting lossLayer() {
        return (MtpLossReporting) graph.getLayer(GraphNames.LM_HEAD);
    }

    /** lm_head.weight [V, H] (a view of the graph's parameters). */
    public INDArray headWeight() {
        return graph.getLayer(GraphNames.LM_HEAD).getParam(MtpLossLayer.WEIGHT);
    }

    private static INDArray timeMajor(INDArray ncw) {
        return ncw.permute(0, 2, 1).dup('c');
    }

    /** hidden [B, T, H] · Wᵀ → [B, T, V]. */
    private static INDArray logits(INDArray hidden, INDArray weight) {
        long b = hidden.size(0);
        long t = hidden.size(1);
        INDArray rows = hidden.reshape('c', b * t, hidden.size(2));
        return rows.mmul(weight.transpose()).reshape('c', b, t, weight.size(0));
    }

    public ComputationGraph graph() {
        return graph;
    }

    public NemotronV3Config config() {
        return config;
    }

    public MtpConfig mtp() {
        return mtp;
    }
}
