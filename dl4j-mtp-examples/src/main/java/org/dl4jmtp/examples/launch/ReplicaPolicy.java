package org.dl4jmtp.examples.launch;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.bench.Flops;
import org.dl4jmtp.model.DataParallelGraph;

/**
 * How many replicas {@code train} and {@code bench} use when {@code --replicas} is not given: one per core
 * ({@link DataParallelGraph#defaultReplicas}) for a step large enough that each replica's share outweighs the thread
 * hand-offs of a data-parallel step, else one. Measured on 2 cores with one ND4J thread (4 Dec 2026): the tiny preset
 * (about 0.7 GFLOP per step) ran at 6,611 tokens/s with one replica and 4,897 with two; the small preset (18 GFLOP per
 * step) at 3,785 with one and 5,587 with two.
 */
public final class ReplicaPolicy {

    /** Training FLOPs per step below which a single replica is faster. */
    static final double MIN_PARALLEL_STEP_FLOPS = 4e9;

    /**
     * Forward FLOPs per decoded token below which one thread inside each op is faster: a decoding step is a chain of
     * small ops, and waking a second thread costs more than it saves. Measured on 2 cores (5 Dec 2026) with the main
     * job's model (about 0.4 MFLOP per token): 1.19 ms per cached greedy token with one thread, 2.02 with two.
     */
    static final double MIN_PARALLEL_TOKEN_FLOPS = 1e8;

    private ReplicaPolicy() {
    }

    public static int defaultReplicas(NemotronV3Config config, MtpConfig mtp, int batchSize, int seqLen) {
        return stepFlops(config, mtp, batchSize, seqLen) < MIN_PARALLEL_STEP_FLOPS ? 1
                : DataParallelGraph.defaultReplicas(batchSize);
    }

    /**
     * Threads inside each op ({@link IntraOpThreads}) for a step computed by {@code replicas} replicas: 1 when replicas
     * share out the cores or the step is too small to gain, else (one replica of a large step, e.g. a batch of one long
     * sequence) every core.
     */
    public static int threadsPerReplica(NemotronV3Config config, MtpConfig mtp, int batchSize, int seqLen,
                                        int replicas) {
        if (replicas > 1 || stepFlops(config, mtp, batchSize, seqLen) < MIN_PARALLEL_STEP_FLOPS) {
            return 1;
        }
        return Runtime.getRuntime().availableProcessors();
    }

    private static double stepFlops(NemotronV3Config config, MtpConfig mtp, int batchSize, int seqLen) {
        return Flops.of(config, mtp, seqLen).trainPerToken() * batchSize * seqLen;
    }

    /** Threads inside each op ({@link IntraOpThreads}) for token-by-token decoding: 1 for small models, else every core. */
    public static int decodeThreads(NemotronV3Config config, MtpConfig mtp) {
        return 2.0 * Flops.of(config, mtp, 1).activeParams() < MIN_PARALLEL_TOKEN_FLOPS ? 1
                : Runtime.getRuntime().availableProcessors();
    }
}
