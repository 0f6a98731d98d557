package org.dl4jmtp.examples.ui;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.UserException;
import org.dl4jmtp.examples.train.TrainOptions;
import org.dl4jmtp.examples.train.Trainer;
import org.dl4jmtp.ui.MtpDashboard;
import org.dl4jmtp.ui.MtpUiException;
import org.dl4jmtp.ui.MtpUiServer;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Locale;

/**
 * {@code train --ui}: the DL4J training UI for one run. Stats go to {@code <run dir>/stats.dl4j}; DL4J's StatsListener
 * feeds the stock pages, {@link MtpUiObserver} the MTP page.
 */
public final class TrainingUi implements AutoCloseable {

    private final MtpDashboard dashboard;
    private final Path statsFile;
    private final PrintStream log;

    private TrainingUi(MtpDashboard dashboard, Path statsFile, PrintStream log) {
        this.dashboard = dashboard;
        this.statsFile = statsFile;
        this.log = log;
    }

    /**
     * Starts the UI and attaches it to {@code trainer}.
     *
     * @param port the UI port, or null for 9000 (or {@code -Dorg.deeplearning4j.ui.port}); the next free port if busy
     * @throws UserException if the UI cannot start (a message, no stack trace)
     */
    public static TrainingUi start(Trainer trainer, Path runDir, Integer port, PrintStream log) {
        Path statsFile = runDir.resolve(MtpDashboard.STATS_FILE);
        MtpDashboard dashboard;
        try {
            dashboard = MtpDashboard.forTraining(statsFile, port != null ? port : MtpUiServer.defaultPort(), 1, log);
        } catch (MtpUiException e) {
            throw new UserException(e.getMessage(), e);
        }
        trainer.addListener(dashboard.statsListener());
        trainer.addObserver(new MtpUiObserver(dashboard.recorder(), () -> describe(trainer)));
        log.println("Training UI: " + dashboard.mtpUrl() + "  (DL4J pages: " + dashboard.server().url()
                + "/train; stats: " + statsFile + ")");
        return new TrainingUi(dashboard, statsFile, log);
    }

    public String mtpUrl() {
        return dashboard.mtpUrl();
    }

    public int port() {
        return dashboard.server().port();
    }

    /** Stops the UI and closes the stats file. */
    @Override
    public void close() {
        dashboard.close();
        log.println("Training UI stopped. Reopen this run with: dl4j-mtp ui --stats " + statsFile);
    }

    private static String describe(Trainer trainer) {
        try {
            Trainer.RunFile run = trainer.readRunFile();
            NemotronV3Config c = run.config();
            MtpConfig mtp = run.mtp();
            TrainOptions o = run.options();
            return String.format(Locale.ROOT, "hidden %d, %d layers, MTP D=%d ('%s', λ %s), batch %d × %d tokens, %d steps",
                    c.getHiddenSize(), c.getLayerTypes().size(), mtp.getNumLayers(), mtp.getLayerPattern(),
                    mtp.getLossScalingFactor(), o.batchSize(), o.seqLen(), o.steps());
        } catch (Exception e) {
            return "";
        }
    }
}
