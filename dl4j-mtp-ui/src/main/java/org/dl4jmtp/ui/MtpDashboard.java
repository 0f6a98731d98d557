package org.dl4jmtp.ui;

import org.deeplearning4j.core.storage.StatsStorage;
import org.deeplearning4j.ui.model.stats.StatsListener;
import org.deeplearning4j.ui.model.storage.FileStatsStorage;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * The training UI of one run: a {@link FileStatsStorage}, the DL4J UI with the MTP page ({@link MtpUiServer}) and, while
 * training, DL4J's {@link StatsListener} (stock overview/model/system pages) plus an {@link MtpStatsRecorder} writing
 * under the listener's session.
 *
 * <pre>{@code
 * try (MtpDashboard ui = MtpDashboard.forTraining(runDir.resolve("stats.dl4j"), 9000, System.out)) {
 *     graph.addListeners(ui.statsListener());
 *     ... ui.recorder().recordStep(...), ui.recorder().recordValidation(...)
 * }
 * }</pre>
 */
public final class MtpDashboard implements AutoCloseable {

    /** The stats file's name in a run directory. */
    public static final String STATS_FILE = "stats.dl4j";

    private final StatsStorage storage;
    private final MtpUiServer server;
    private final StatsListener statsListener;
    private final MtpStatsRecorder recorder;

    private MtpDashboard(StatsStorage storage, MtpUiServer server, StatsListener statsListener,
                         MtpStatsRecorder recorder) {
        this.storage = storage;
        this.server = server;
        this.statsListener = statsListener;
        this.recorder = recorder;
    }

    /**
     * Starts the UI for a training run: stats go to {@code statsFile} (created, or appended to as a new session), and
     * the UI listens on {@code port} or the next free one. The listener and the recorder never fail a training step:
     * writes after {@link #close} (or after MapDB's shutdown hook closed the file on Ctrl-C) are dropped.
     *
     * @param listenerFrequency the StatsListener reports every this many iterations
     */
    public static MtpDashboard forTraining(Path statsFile, int port, int listenerFrequency, PrintStream log) {
        try {
            Path parent = statsFile.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
        } catch (IOException e) {
            throw new MtpUiException("Cannot create the directory of " + statsFile + ": " + e.getMessage(), e);
        }
        StatsStorage storage = openStorage(statsFile);
        try {
            MtpUiServer server = MtpUiServer.start(port, log);
            server.attach(storage);
            GuardedStatsRouter router = new GuardedStatsRouter(storage, log);
            StatsListener listener = new StatsListener(router, Math.max(1, listenerFrequency));
            return new MtpDashboard(storage, server, listener, MtpStatsRecorder.forListener(router, listener));
        } catch (RuntimeException e) {
            closeQuietly(storage);
            throw e;
        }
    }

    /** Serves the run stored in {@code statsFile} (stock pages and MTP page); nothing is written to it. */
    public static MtpDashboard forStoredRun(Path statsFile, int port, PrintStream log) {
        if (!Files.isRegularFile(statsFile)) {
            throw new MtpUiException("No such stats file: " + statsFile
                    + " (train --ui writes <run dir>/" + STATS_FILE + ")");
        }
        checkStoreHeader(statsFile);
        StatsStorage storage = openStorage(statsFile);
        try {
            List<String> sessions = storage.listSessionIDs();
            if (sessions.isEmpty()) {
                log.println("Note: " + statsFile + " holds no training session yet.");
            } else if (sessions.stream().noneMatch(s -> storage.listTypeIDsForSession(s).contains(MtpStatsRecord.TYPE_ID))) {
                log.println("Note: " + statsFile + " holds no MTP records; the stock pages still show its sessions.");
            }
            MtpUiServer server = MtpUiServer.start(port, log);
            server.attach(storage);
            return new MtpDashboard(storage, server, null, null);
        } catch (RuntimeException e) {
            closeQuietly(storage);
            throw e;
        }
    }

    /**
     * The first bytes of every file {@link FileStatsStorage} writes: MapDB 3's file header ({@code CC.FILE_HEADER})
     * and store type ({@code CC.FILE_TYPE_STOREDIRECT}).
     */
    private static final byte[] STORE_HEADER = {0x4A, 0x03};

    /**
     * Rejects an empty or foreign file before MapDB sees it: MapDB reports those as its internal errors (a
     * {@code VolumeIOError} without a message for a text file), which say nothing about what is wrong.
     */
    private static void checkStoreHeader(Path statsFile) {
        byte[] head = new byte[STORE_HEADER.length];
        int read;
        try (InputStream in = Files.newInputStream(statsFile)) {
            read = in.readNBytes(head, 0, head.length);
        } catch (IOException e) {
            throw new MtpUiException("Cannot read " + statsFile + ": " + e.getMessage(), e);
        }
        if (read == 0) {
            throw new MtpUiException("Cannot open " + statsFile + ": the file is empty, not a DL4J stats file");
        }
        if (!Arrays.equals(head, STORE_HEADER)) {
            throw new MtpUiException("Cannot open " + statsFile + ": not a DL4J stats file (it does not start like"
                    + " the " + STATS_FILE + " that train --ui writes)");
        }
    }

    private static StatsStorage openStorage(Path statsFile) {
        try {
            return new FileStatsStorage(statsFile.toFile());
        } catch (RuntimeException | Error e) {
            String why = String.valueOf(e.getMessage());
            if (why.toLowerCase(java.util.Locale.ROOT).contains("lock")) {
                throw new MtpUiException("Cannot open " + statsFile + ": it is in use by another process"
                        + " (a run still training? its own UI shows it live)", e);
            }
            // MapDB's messages are class names or recovery advice for its own API: the first sentence at most
            String detail = e.getMessage() == null ? "" : ": " + e.getMessage().split("(?<=\\.) ", 2)[0];
            throw new MtpUiException("Cannot open " + statsFile + " as a DL4J stats file: it is truncated or"
                    + " corrupted" + detail, e);
        }
    }

    /** DL4J's listener for the stock pages (null for a stored run). */
    public StatsListener statsListener() {
        return statsListener;
    }

    /** Writes the MTP records (null for a stored run). */
    public MtpStatsRecorder recorder() {
        return recorder;
    }

    public StatsStorage storage() {
        return storage;
    }

    public MtpUiServer server() {
        return server;
    }

    public String mtpUrl() {
        return server.mtpUrl();
    }

    /** Stops the UI and closes the stats file (committing what was written). */
    @Override
    public void close() {
        try {
            server.close();
        } finally {
            closeQuietly(storage);
        }
    }

    private static void closeQuietly(StatsStorage storage) {
        try {
            if (!storage.isClosed()) {
                storage.close();
            }
        } catch (IOException | RuntimeException | IllegalAccessError e) {
            // already closed by MapDB's shutdown hook (IllegalAccessError "DB was closed"), or closing after a
            // failure, where the original error matters more
        }
    }
}
