package org.dl4jmtp.model;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;

/** Work shared between the calling thread and single-thread workers ({@link DataParallelGraph}'s replica threads). */
final class SharedWork {

    private SharedWork() {
    }

    /** Runs share 0 on the calling thread and share i on worker i-1, and waits for all; at most workers + 1 shares. */
    static void run(List<ExecutorService> workers, List<Runnable> shares) {
        if (shares.size() > workers.size() + 1) {
            throw new IllegalArgumentException(shares.size() + " shares for " + (workers.size() + 1) + " threads");
        }
        List<Future<?>> pending = new ArrayList<>();
        for (int s = 1; s < shares.size(); s++) {
            pending.add(workers.get(s - 1).submit(shares.get(s)));
        }
        RuntimeException failure = null;
        try {
            if (!shares.isEmpty()) {
                shares.get(0).run();
            }
        } catch (RuntimeException e) {
            failure = e;
        }
        for (Future<?> f : pending) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                failure = failure != null ? failure : new IllegalStateException("interrupted while waiting for a worker", e);
            } catch (ExecutionException e) {
                // a worker's own exception as it is (e.g. a refused shape), so callers see the same type as on one thread
                failure = failure != null ? failure : e.getCause() instanceof RuntimeException
                        ? (RuntimeException) e.getCause()
                        : new IllegalStateException("a worker failed: " + e.getCause(), e.getCause());
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Boundaries of {@code count} contiguous ranges of [0, length) whose sizes differ by at most one. */
    static long[] bounds(long length, int count) {
        long[] bounds = new long[count + 1];
        for (int s = 0; s <= count; s++) {
            bounds[s] = length * s / count;
        }
        return bounds;
    }

    /** Elements [from, to) of a contiguous array, as a flat view. */
    static INDArray range(INDArray contiguous, long from, long to) {
        return contiguous.reshape(contiguous.length()).get(NDArrayIndex.interval(from, to));
    }
}
