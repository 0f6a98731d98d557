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
 * @param documentIsolation each packed document sees only itself (absent in older run files, which trained without:
 *                          false, so that they resume as they ran)
 */
public record TrainOptions(int steps, int batchSize, int seqLen, double learningRate, int warmupSteps,
                           double minLrRatio, double gradientClip, long seed, int evalEvery, int evalBatches,
                           int checkpointEvery, int keepCheckpoints, String dataType, String runtime,
                           Boolean documentIsolation) {

    /** The settings with document isolation on (the default of {@code train}). */
    public TrainOptions(int steps, int batchSize, int seqLen, double learningRate, int warmupSteps, double minLrRatio,
                        double gradientClip, long seed, int evalEvery, int evalBatches, int checkpointEvery,
                        int keepCheckpoints, String dataType, String runtime) {
        this(steps, batchSize, seqLen, learningRate, warmupSteps, minLrRatio, gradientClip, seed, evalEvery, evalBatches,
                checkpointEvery, keepCheckpoints, dataType, runtime, true);
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

    public org.nd4j.linalg.api.buffer.DataType nd4jDataType() {
        return org.nd4j.linalg.api.buffer.DataType.valueOf(dataType.toUpperCase(java.util.Locale.ROOT));
    }
}
