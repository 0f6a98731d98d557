package org.dl4jmtp.examples.launch;

import org.nd4j.linalg.factory.Nd4j;

/**
 * Threads inside each ND4J op (libnd4j's pool and OpenBLAS), set at run time once the command knows its replicas
 * ({@link ReplicaPolicy#threadsPerReplica}): one per replica when replicas share out the cores, all cores when a single
 * replica computes a step large enough to gain from them (a batch of one long sequence cannot be split into replicas).
 *
 * <p>The tuned child JVM starts with every core available to both pools and {@value #AUTO}=1 ({@link ProcessTuning});
 * lowering the count at run time takes effect in both pools, raising it beyond the start value only in OpenBLAS, so
 * the child starts high. Without that mark (a user's own {@code OMP_NUM_THREADS}/{@code OPENBLAS_NUM_THREADS}, or a
 * JVM that was not relaunched) nothing is changed. Library users call {@link #use} themselves.
 */
public final class IntraOpThreads {

    /** Set by the launcher in the child's environment: the thread counts are dl4j-mtp's to choose. */
    public static final String AUTO = "DL4JMTP_AUTO_THREADS";

    private IntraOpThreads() {
    }

    /** {@link #use}({@code threads}) when the launcher left the counts to dl4j-mtp; returns whether it did. */
    public static boolean applyIfAuto(int threads) {
        if (!"1".equals(System.getenv(AUTO))) {
            return false;
        }
        use(threads);
        return true;
    }

    /** At most {@code threads} threads inside each ND4J op and each OpenBLAS call from now on. */
    public static void use(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        Nd4j.getEnvironment().setMaxThreads(threads);
        Nd4j.getEnvironment().setMaxMasterThreads(threads);
        Nd4j.factory().blas().setMaxThreads(threads);
    }
}
