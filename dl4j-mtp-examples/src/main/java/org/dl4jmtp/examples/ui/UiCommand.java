package org.dl4jmtp.examples.ui;

import org.dl4jmtp.examples.UserException;
import org.dl4jmtp.ui.MtpDashboard;
import org.dl4jmtp.ui.MtpUiException;
import org.dl4jmtp.ui.MtpUiServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** {@code ui --stats run/stats.dl4j}: serves a stored run (stock DL4J pages and the MTP page) until Ctrl-C. */
@Command(name = "ui", mixinStandardHelpOptions = true,
        description = "Serve a stored training run in the DL4J training UI with the MTP page, until Ctrl-C.")
public final class UiCommand implements Callable<Integer> {

    @Option(names = "--stats", required = true, paramLabel = "FILE",
            description = "The run's stats file (train --ui writes <run dir>/stats.dl4j).")
    Path stats;

    @Option(names = "--port", paramLabel = "P",
            description = "UI port (default: 9000, or -Dorg.deeplearning4j.ui.port; the next free port if busy).")
    Integer port;

    @Override
    public Integer call() {
        PrintStream log = System.out;
        MtpDashboard dashboard;
        try {
            dashboard = MtpDashboard.forStoredRun(stats, port != null ? port : MtpUiServer.defaultPort(), log);
        } catch (MtpUiException e) {
            throw new UserException(e.getMessage(), e);
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Thread onExit = new Thread(() -> {
            dashboard.close();
            stopped.countDown();
        }, "dl4j-mtp-ui-exit");
        Runtime.getRuntime().addShutdownHook(onExit);
        log.println("Serving " + stats + " read-only: " + dashboard.mtpUrl() + "  (DL4J pages: "
                + dashboard.server().url() + "/train). Ctrl-C to stop.");
        log.flush();
        try {
            stopped.await();
        } catch (InterruptedException e) {
            // stopped by the caller (tests): close and return
            Runtime.getRuntime().removeShutdownHook(onExit);
            dashboard.close();
        }
        return 0;
    }
}
