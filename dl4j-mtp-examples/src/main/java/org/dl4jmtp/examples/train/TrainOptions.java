package org.dl4jmtp.examples.train;

/**
 * Training settings of one run (saved in the run directory so that {@code --resume} continues with the same ones).
 *
 * @param steps            optimizer steps in total
 * @param batchSize        sequences per batch
 * @param seqLen           tokens per sequence (T)
 * @param learningRate     peak Adam learning rate
 * @param warmupSteps      linear warm-up steps
 * @param minLrRatio       final learning rate as a fraction of the peak (cosine decay)
 * @param gradientClip     L2 norm threshold per layer (DL4J ClipL2PerLayer); 0 disables clipping
 * @param seed             initialisation and data seed
 * @param evalEvery        validation every N steps (and at the end)
 * @param evalBatches      at most this many validation batches
 * @param checkpointEvery  DL4J checkpoint every N steps (and at the end)
 * @param keepCheckpoints  checkpoints kept on disk
 * @param dataType         FLOAT or DOUBLE
 * @param runtime          the layers' runtime, {@code explicit} or {@code samediff} (absent in older run files: explicit)
 * @param routerBiasUpdateRate step of the MoE expert-bias balancing after every optimizer step (0 = off; absent in
 *                         older run files: off)
 * @param initFrom         an HF checkpoint directory the run starts from (absolute), or null for a fresh model
 * @param trainOnly        {@value #TRAIN_ALL} (null is read as it) or {@value #TRAIN_MTP}: everything outside
 *                         {@code mtp.*} frozen
 * @param documentIsolation each packed document sees only itself (absent in older run files, which trained without:
 *                          false, so that they resume as they ran)
 */
public record TrainOptions(int steps, int batchSize, int seqLen, double learningRate, int warmupSteps,
                           double minLrRatio, double gradientClip, long seed, int evalEvery, int evalBatches,
                           int checkpointEvery, int keepCheckpoints, String dataType, String runtime,
                           double routerBiasUpdateRate, String initFrom, String trainOnly,
                           Boolean documentIsolation) {

    /** {@code --train-only} value: every parameter trains. */
    public static final String TRAIN_ALL = "all";
    /** {@code --train-only} value: only the {@code mtp.*} parameters train. */
    public static final String TRAIN_MTP = "mtp";

    /** The settings with document isolation on (the default of {@code train}). */
    public TrainOptions(int steps, int batchSize, int seqLen, double learningRate, int warmupSteps, double minLrRatio,
                        double gradientClip, long seed, int evalEvery, int evalBatches, int checkpointEvery,
                        int keepCheckpoints, String dataType, String runtime, double routerBiasUpdateRate,
                        String initFrom, String trainOnly) {
        this(steps, batchSize, seqLen, learningRate, warmupSteps, minLrRatio, gradientClip, seed, evalEvery, evalBatches,
                checkpointEvery, keepCheckpoints, dataType, runtime, routerBiasUpdateRate, initFrom, trainOnly, true);
    }

    /**
     * The settings before balancing, init-from and train-only existed: no balancing, a fresh model, all trained,
     * documents isolated.
     */
    public TrainOptions(int steps, int batchSize, int seqLen, double learningRate, int warmupSteps, double minLrRatio,
                        double gradientClip, long seed, int evalEvery, int evalBatches, int checkpointEvery,
                        int keepCheckpoints, String dataType, String runtime) {
        this(steps, batchSize, seqLen, learningRate, warmupSteps, minLrRatio, gradientClip, seed, evalEvery, evalBatches,
                checkpointEvery, keepCheckpoints, dataType, runtime, 0.0, null, null);
    }

    /** The settings on the explicit runtime (the form before the runtime was selectable). */
    public TrainOptions(int steps, int batchSize, int seqLen, double learningRate, int warmupSteps, double minLrRatio,
                        double gradientClip, long seed, int evalEvery, int evalBatches, int checkpointEvery,
                        int keepCheckpoints, String dataType) {
        this(steps, batchSize, seqLen, learningRate, warmupSteps, minLrRatio, gradientClip, seed, evalEvery, evalBatches,
                checkpointEvery, keepCheckpoints, dataType, null);
    }

    public TrainOptions {
        documentIsolation = documentIsolation != null && documentIsolation;
        trainOnly = trainOnly == null ? TRAIN_ALL : trainOnly.trim().toLowerCase(java.util.Locale.ROOT);
        if (!trainOnly.equals(TRAIN_ALL) && !trainOnly.equals(TRAIN_MTP)) {
            throw new IllegalArgumentException("train-only must be " + TRAIN_ALL + " or " + TRAIN_MTP + ", got " + trainOnly);
        }
        if (!(routerBiasUpdateRate >= 0) || Double.isInfinite(routerBiasUpdateRate)) {
            throw new IllegalArgumentException("router bias update rate must be finite and >= 0, got " + routerBiasUpdateRate);
        }
        runtime = (runtime == null ? org.dl4jmtp.layers.LayerRuntime.EXPLICIT
                : org.dl4jmtp.layers.LayerRuntime.parse(runtime)).cliName();
        if (steps <= 0 || batchSize <= 0 || seqLen <= 1) {
            throw new IllegalArgumentException("steps, batch size must be > 0 and sequence length > 1, got "
                    + steps + ", " + batchSize + ", " + seqLen);
        }
        if (evalEvery <= 0 || checkpointEvery <= 0 || keepCheckpoints <= 0 || evalBatches <= 0) {
            throw new IllegalArgumentException("eval-every, eval-batches, checkpoint-every and keep-checkpoints must be > 0");
        }
    }

    /** The layers' runtime. */
    public org.dl4jmtp.layers.LayerRuntime layerRuntime() {
        return org.dl4jmtp.layers.LayerRuntime.parse(runtime);
    }

    /** True when only the MTP depths train ({@code --train-only mtp}). */
    public boolean trainsOnlyMtp() {
        return TRAIN_MTP.equals(trainOnly);
    }

    /** These settings with another balancing rate, init-from directory and train-only choice. */
    public TrainOptions withPretraining(double rate, String initFromDir, String only) {
        return new TrainOptions(steps, batchSize, seqLen, learningRate, warmupSteps, minLrRatio, gradientClip, seed,
                evalEvery, evalBatches, checkpointEvery, keepCheckpoints, dataType, runtime, rate, initFromDir, only,
                documentIsolation);
    }

    /** These settings with document isolation on or off. */
    public TrainOptions withDocumentIsolation(boolean isolation) {
        return new TrainOptions(steps, batchSize, seqLen, learningRate, warmupSteps, minLrRatio, gradientClip, seed,
                evalEvery, evalBatches, checkpointEvery, keepCheckpoints, dataType, runtime, routerBiasUpdateRate,
                initFrom, trainOnly, isolation);
    }

    public org.nd4j.linalg.api.buffer.DataType nd4jDataType() {
        return org.nd4j.linalg.api.buffer.DataType.valueOf(dataType.toUpperCase(java.util.Locale.ROOT));
    }
}
