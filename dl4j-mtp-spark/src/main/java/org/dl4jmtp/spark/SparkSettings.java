package org.dl4jmtp.spark;

import org.deeplearning4j.optimize.solvers.accumulation.encoding.threshold.AdaptiveThresholdAlgorithm;
import org.deeplearning4j.spark.api.RDDTrainingApproach;
import org.deeplearning4j.spark.api.TrainingMaster;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingMaster;
import org.deeplearning4j.spark.parameterserver.training.SharedTrainingMaster;
import org.nd4j.parameterserver.distributed.conf.VoidConfiguration;

import java.util.Locale;

/**
 * How a run is spread over Spark: the training master and its settings. Recorded in {@code run.json} under
 * {@code "spark"}.
 *
 * @param trainingMaster     {@code parameter-averaging} (DL4J's ParameterAveragingTrainingMaster) or {@code shared}
 *                           (SharedTrainingMaster: gradient sharing through a parameter server)
 * @param workers            parallel workers (Spark tasks) per round; each fits its own batches of the run's batch size
 * @param averagingFrequency optimizer steps each worker makes between two parameter averagings (parameter averaging),
 *                           or per Spark job (shared); the run's steps must be a multiple of it
 * @param threshold          shared: the initial threshold of DL4J's adaptive gradient-sharing encoding
 * @param unicastPort        shared: the parameter server's port on every node
 * @param controllerAddress  shared: the address of the node that coordinates the parameter server (null: the driver's)
 * @param networkMask        shared: the network the nodes talk over, e.g. {@code 10.1.0.0/16} (null: let DL4J pick)
 */
public record SparkSettings(String trainingMaster, int workers, int averagingFrequency, double threshold,
                            int unicastPort, String controllerAddress, String networkMask) {

    public static final String PARAMETER_AVERAGING = "parameter-averaging";
    public static final String SHARED = "shared";
    /** The Aeron property that shared training needs raised on the driver and on every executor. */
    public static final String AERON_UNBLOCK_TIMEOUT = "aeron.publication.unblock.timeout";
    public static final String AERON_UNBLOCK_TIMEOUT_NS = "60000000000";

    public SparkSettings {
        trainingMaster = trainingMaster == null ? PARAMETER_AVERAGING : trainingMaster.toLowerCase(Locale.ROOT);
        if (!trainingMaster.equals(PARAMETER_AVERAGING) && !trainingMaster.equals(SHARED)) {
            throw new IllegalArgumentException("--training-master must be " + PARAMETER_AVERAGING + " or " + SHARED
                    + ", got " + trainingMaster);
        }
        if (workers < 1 || averagingFrequency < 1) {
            throw new IllegalArgumentException("--workers and --averaging-frequency must be >= 1, got " + workers
                    + " and " + averagingFrequency);
        }
        if (!(threshold > 0)) {
            throw new IllegalArgumentException("--threshold must be > 0, got " + threshold);
        }
        if (unicastPort < 1 || unicastPort > 65535) {
            throw new IllegalArgumentException("--unicast-port must lie in [1, 65535], got " + unicastPort);
        }
    }

    /** Parameter averaging with these workers and averaging frequency (the defaults of the shared settings). */
    public static SparkSettings parameterAveraging(int workers, int averagingFrequency) {
        return new SparkSettings(PARAMETER_AVERAGING, workers, averagingFrequency, 1e-3, 40123, null, null);
    }

    public boolean shared() {
        return trainingMaster.equals(SHARED);
    }

    /**
     * The training master for batches of {@code batchSize} sequences (one RDD element is one worker batch, used
     * as it is: no splitting or merging of batches), the RDD handed to the workers directly (no export to files).
     */
    public TrainingMaster build(int batchSize, long seed) {
        if (!shared()) {
            return new ParameterAveragingTrainingMaster.Builder(workers, batchSize)
                    .batchSizePerWorker(batchSize)
                    .averagingFrequency(averagingFrequency)
                    .saveUpdater(true)                  // Adam's moments are averaged too, not restarted each round
                    .workerPrefetchNumBatches(0)
                    .rddTrainingApproach(RDDTrainingApproach.Direct)
                    .rngSeed(seed)
                    .build();
        }
        // DL4J's Aeron transport sets a client liveness timeout of 30 s, above Aeron 1.39's default publication unblock
        // timeout (15 s), and Aeron then refuses to start ("publicationUnblockTimeoutNs ... <= clientLivenessTimeoutNs");
        // executors need the same property (docs/spark.md)
        if (System.getProperty(AERON_UNBLOCK_TIMEOUT) == null) {
            System.setProperty(AERON_UNBLOCK_TIMEOUT, AERON_UNBLOCK_TIMEOUT_NS);
        }
        VoidConfiguration.VoidConfigurationBuilder voidConfig = VoidConfiguration.builder().unicastPort(unicastPort);
        if (controllerAddress != null) {
            voidConfig.controllerAddress(controllerAddress);
        }
        if (networkMask != null) {
            voidConfig.networkMask(networkMask);
        }
        return new SharedTrainingMaster.Builder(voidConfig.build(), workers, new AdaptiveThresholdAlgorithm(threshold),
                batchSize)
                .batchSizePerWorker(batchSize)
                .workersPerNode(1)
                .workerPrefetchNumBatches(0)
                .rddTrainingApproach(RDDTrainingApproach.Direct)
                .rngSeed(seed)
                .build();
    }
}
