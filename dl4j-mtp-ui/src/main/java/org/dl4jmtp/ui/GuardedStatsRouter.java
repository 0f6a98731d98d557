package org.dl4jmtp.ui;

import org.deeplearning4j.core.storage.Persistable;
import org.deeplearning4j.core.storage.StatsStorage;
import org.deeplearning4j.core.storage.StatsStorageRouter;
import org.deeplearning4j.core.storage.StorageMetaData;

import java.io.PrintStream;
import java.util.Collection;

/**
 * Routes stats into a storage without ever failing the training step that produced them: once the storage is closed
 * (end of run, or MapDB's own shutdown hook on Ctrl-C while the trainer writes its last checkpoint) records are
 * dropped, and after an unexpected write error recording stops with one warning.
 */
final class GuardedStatsRouter implements StatsStorageRouter {

    private final StatsStorage storage;
    private final PrintStream log;
    private volatile boolean failed;
    private volatile boolean closed;

    GuardedStatsRouter(StatsStorage storage, PrintStream log) {
        this.storage = storage;
        this.log = log;
    }

    private interface Write {
        void run();
    }

    private void guarded(Write write) {
        if (failed || closed || storage.isClosed()) {
            return;
        }
        try {
            write.run();
        } catch (IllegalAccessError dbClosed) {
            // MapDB's "DB was closed": its shutdown hook ran (Ctrl-C) before the trainer's last steps
            closed = true;
        } catch (RuntimeException e) {
            if (jvmShuttingDown()) {
                closed = true;      // MapDB's shutdown hook closed the file under us: not worth a warning
            } else if (!storage.isClosed()) {
                failed = true;
                log.println("Warning: the training UI stopped recording stats after an error (" + e
                        + "); training goes on.");
            }
        }
    }

    static boolean jvmShuttingDown() {
        Thread probe = new Thread(() -> { });
        try {
            Runtime.getRuntime().addShutdownHook(probe);
            Runtime.getRuntime().removeShutdownHook(probe);
            return false;
        } catch (IllegalStateException shuttingDown) {
            return true;
        }
    }

    @Override
    public void putStorageMetaData(StorageMetaData storageMetaData) {
        guarded(() -> storage.putStorageMetaData(storageMetaData));
    }

    @Override
    public void putStorageMetaData(Collection<? extends StorageMetaData> storageMetaData) {
        guarded(() -> storage.putStorageMetaData(storageMetaData));
    }

    @Override
    public void putStaticInfo(Persistable staticInfo) {
        guarded(() -> storage.putStaticInfo(staticInfo));
    }

    @Override
    public void putStaticInfo(Collection<? extends Persistable> staticInfo) {
        guarded(() -> storage.putStaticInfo(staticInfo));
    }

    @Override
    public void putUpdate(Persistable update) {
        guarded(() -> storage.putUpdate(update));
    }

    @Override
    public void putUpdate(Collection<? extends Persistable> updates) {
        guarded(() -> storage.putUpdate(updates));
    }
}
