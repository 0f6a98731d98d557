package org.dl4jmtp.ui;

import org.deeplearning4j.core.storage.Persistable;
import org.deeplearning4j.core.storage.StatsStorage;
import org.deeplearning4j.core.storage.StorageMetaData;
import org.deeplearning4j.ui.model.stats.api.StatsReport;
import org.deeplearning4j.ui.model.storage.FileStatsStorage;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Rewinds a run's stats file to the checkpoint a resumed run continues from: the records of later steps (written by
 * the interrupted run after its last checkpoint, and about to be computed again) are dropped, so that the UI shows each
 * step once. The kept records are copied into a new file that then replaces the old one, so a failure leaves the old
 * file as it was.
 *
 * <p>A step is an optimizer step counted from 1: MTP records carry it, DL4J's {@link StatsReport}s carry the iteration
 * count before the step (step - 1).
 */
public final class StatsRewind {

    private StatsRewind() {
    }

    /**
     * Keeps the records of steps {@code <= step} in {@code statsFile}. A file that cannot be opened as a stats file is
     * renamed {@code <name>.unreadable} (not deleted), so that the resumed run starts a new one; each outcome is one line
     * on {@code log}.
     *
     * @return the number of records dropped
     */
    public static int keepThroughStep(Path statsFile, long step, PrintStream log) throws IOException {
        if (!Files.isRegularFile(statsFile)) {
            return 0;
        }
        Path copy = statsFile.resolveSibling("." + statsFile.getFileName() + "."
                + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 1) + ".tmp");
        int dropped;
        StatsStorage source;
        try {
            source = new FileStatsStorage(statsFile.toFile());
        } catch (RuntimeException | Error e) {
            Path aside = statsFile.resolveSibling(statsFile.getFileName() + ".unreadable");
            Files.move(statsFile, aside, StandardCopyOption.REPLACE_EXISTING);
            log.println("warning: " + statsFile + " cannot be read as a DL4J stats file (" + e.getMessage()
                    + "); renamed to " + aside.getFileName() + ", the resumed run starts a new one");
            return 0;
        }
        try {
            StatsStorage target = new FileStatsStorage(copy.toFile());
            try {
                dropped = copyThroughStep(source, target, step);
            } finally {
                target.close();
            }
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(copy);
            throw new IOException("cannot rewind " + statsFile + " to step " + step + ": " + e.getMessage(), e);
        } finally {
            source.close();
        }
        if (dropped == 0) {
            Files.delete(copy);
            return 0;
        }
        Files.move(copy, statsFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        log.println("note: dropped " + dropped + " record(s) past step " + step + " from " + statsFile
                + " (the resumed run computes those steps again)");
        return dropped;
    }

    private static int copyThroughStep(StatsStorage from, StatsStorage to, long step) {
        int dropped = 0;
        for (String session : from.listSessionIDs()) {
            for (String type : from.listTypeIDsForSession(session)) {
                StorageMetaData meta = from.getStorageMetaData(session, type);
                if (meta != null) {
                    to.putStorageMetaData(meta);
                }
                for (Persistable info : from.getAllStaticInfos(session, type)) {
                    to.putStaticInfo(info);
                }
                for (String worker : from.listWorkerIDsForSessionAndType(session, type)) {
                    for (Persistable update : from.getAllUpdatesAfter(session, type, worker, Long.MIN_VALUE)) {
                        if (stepOf(update) <= step) {
                            to.putUpdate(update);
                        } else {
                            dropped++;
                        }
                    }
                }
            }
        }
        return dropped;
    }

    /** The optimizer step (from 1) a record belongs to; records of unknown types are kept. */
    private static long stepOf(Persistable update) {
        if (update instanceof MtpStatsRecord r) {
            return r.kind() == MtpStatsRecord.Kind.RUN_INFO ? 0 : r.step();
        }
        if (update instanceof StatsReport r) {
            return r.getIterationCount() + 1L;
        }
        return Long.MIN_VALUE;
    }
}
