package org.dl4jmtp.examples.ui;

import org.dl4jmtp.examples.Dl4jMtpCli;
import org.dl4jmtp.examples.data.Corpus;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;

import java.io.File;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@code train --ui} and {@code ui --stats} checked in a real headless Chromium: the MTP page's charts fill with the
 * run's points while it trains (without reloading), the stock overview page answers, and the stored run reopens.
 * Saves {@code target/mtp-ui.png} and {@code target/mtp-ui-stored.png}.
 *
 * <p>Needs Debian's {@code chromium} and {@code chromium-driver} (.ci/run installs them); without them the test fails.
 * Selenium gets both paths explicitly, so it downloads nothing. Everything listens on 127.0.0.1 only.
 */
class TrainingUiBrowserTest {

    private static final Path CHROMIUM = Path.of("/usr/bin/chromium");
    private static final Path CHROMEDRIVER = Path.of("/usr/bin/chromedriver");
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final int STEPS = 40;
    private static final int EVAL_EVERY = 5;

    /** Mamba2 + attention + MoE backbone (4 experts, top-2), byte vocabulary, 2 MTP depths with a dense MLP sublayer. */
    private static final String MICRO_MOE_CONFIG = "{\"model_type\": \"nemotron_h\", \"vocab_size\": 256,"
            + "\"hidden_size\": 32, \"hybrid_override_pattern\": \"M*E\", \"num_attention_heads\": 2,"
            + "\"num_key_value_heads\": 1, \"head_dim\": 16, \"mamba_num_heads\": 2, \"mamba_head_dim\": 16,"
            + "\"ssm_state_size\": 8, \"n_groups\": 1, \"conv_kernel\": 4, \"chunk_size\": 16, \"intermediate_size\": 64,"
            + "\"n_routed_experts\": 4, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 32,"
            + "\"moe_shared_expert_intermediate_size\": 32, \"n_shared_experts\": 1, \"routed_scaling_factor\": 1.0,"
            + "\"num_nextn_predict_layers\": 2, \"mtp_hybrid_override_pattern\": \"-\"}";

    @Test
    void theMtpPageFillsWhileTrainingAndTheStoredRunReopens(@TempDir Path dir) throws Exception {
        if (!Files.isExecutable(CHROMIUM) || !Files.isExecutable(CHROMEDRIVER)) {
            fail("This test needs a real Chromium: " + CHROMIUM + " and " + CHROMEDRIVER + " are missing. Install Debian's "
                    + "packages with 'apt-get update && apt-get install -y chromium chromium-driver' (.ci/run does).");
        }
        Path corpusDir = Files.createDirectories(dir.resolve("corpus"));
        for (Corpus.Document d : Corpus.synthetic(3, 4, 6000).documents()) {
            Files.writeString(corpusDir.resolve(d.name().replaceAll("[^A-Za-z0-9_-]", "_") + ".txt"), d.text());
        }
        Path config = Files.writeString(dir.resolve("config.json"), MICRO_MOE_CONFIG);
        Path run = dir.resolve("run");
        int port = freePort();
        String base = "http://127.0.0.1:" + port;
        Path target = Path.of("target");
        Files.createDirectories(target);

        ExecutorService commands = Executors.newFixedThreadPool(2);
        ChromeDriver browser = null;
        try {
            Future<Integer> training = commands.submit(() -> Dl4jMtpCli.newCommandLine().execute("train",
                    "--config", config.toString(), "--corpus", corpusDir.toString(), "--out", run.toString(),
                    "--steps", Integer.toString(STEPS), "--batch-size", "4", "--seq-len", "32", "--lr", "1e-2",
                    "--warmup", "5", "--eval-every", Integer.toString(EVAL_EVERY), "--eval-batches", "2",
                    "--checkpoint-every", "1000", "--validation-fraction", "0.1", "--ui", "--ui-port", Integer.toString(port)));
            awaitPage(base + "/mtp", () -> training.isDone(), 120);

            browser = chromium(dir.resolve("chrome-profile"));
            browser.get(base + "/mtp");
            long first = awaitAtLeast(browser, "chart-train-loss", 1, 90);
            long later = awaitAtLeast(browser, "chart-train-loss", first + 1, 90);
            assertTrue(later > first, "the page updates without a reload: " + first + " then " + later + " points");
            assertFalse(training.isDone(), "the run was still training while the page updated");

            // validation charts and the expert load fill in as validations arrive
            awaitAtLeast(browser, "chart-val-loss", 2 * 3, 90);        // two validations x (main + 2 depths)
            assertTrue(points(browser, "chart-accuracy") >= 2 * 5, "accuracy: main + 2 x (vs labels, vs main)");
            assertTrue(points(browser, "chart-acceptance") >= 2);
            assertTrue(points(browser, "chart-throughput") >= later / 3, "one tokens/s point per step (3 heads per step above)");
            assertTrue(points(browser, "chart-imbalance") >= 2 * 2, "largest and smallest expert share of the MoE layer");
            assertEquals(1L, js(browser, "return document.querySelectorAll('#expert-load svg.expert-load-chart').length"));
            assertEquals(4L, js(browser, "return document.querySelectorAll('#expert-load rect.bar').length"), "4 experts");
            assertTrue((Long) js(browser, "return document.querySelectorAll('#chart-train-loss circle.point').length") > 0);
            assertEquals("training step", browser.findElement(By.cssSelector("#chart-train-loss .x-label")).getText());
            assertEquals("loss (nats / token)", browser.findElement(By.cssSelector("#chart-train-loss .y-label")).getText());
            screenshot(browser, target.resolve("mtp-ui.png"));

            // the stock pages work at the same time, with the MTP entry in their sidebar
            assertEquals(200, status(base + "/train/overview"));
            assertEquals(200, status(base + "/train/overview/data"));
            browser.get(base + "/train/overview");
            assertEquals("/mtp", browser.findElement(By.id("mtp-nav-link")).getDomAttribute("href"));

            assertEquals(0, training.get(150, TimeUnit.SECONDS), "train --ui exit code");
            Path stats = run.resolve("stats.dl4j");
            assertTrue(Files.isRegularFile(stats), "the run's stats file");

            // the stored run, read-only
            int storedPort = freePort();
            String storedBase = "http://127.0.0.1:" + storedPort;
            Future<Integer> serving = commands.submit(() -> Dl4jMtpCli.newCommandLine().execute("ui",
                    "--stats", stats.toString(), "--port", Integer.toString(storedPort)));
            awaitPage(storedBase + "/mtp", serving::isDone, 60);
            browser.get(storedBase + "/mtp");
            awaitAtLeast(browser, "chart-val-loss", 3L * (STEPS / EVAL_EVERY), 60);
            assertEquals((long) STEPS, seriesPoints(browser, "chart-train-loss", "main"), "every step of the stored run");
            assertEquals((long) STEPS / EVAL_EVERY, seriesPoints(browser, "chart-val-loss", "depth 2"));
            assertEquals(200, status(storedBase + "/train/overview"));
            screenshot(browser, target.resolve("mtp-ui-stored.png"));
            commands.shutdownNow();   // interrupts the ui command: it closes its server and returns
            assertEquals(0, serving.get(30, TimeUnit.SECONDS), "ui --stats exit code");
        } finally {
            if (browser != null) {
                browser.quit();
            }
            commands.shutdownNow();
        }
    }

    private static ChromeDriver chromium(Path profile) {
        System.setProperty("webdriver.chrome.driver", CHROMEDRIVER.toString());
        ChromeOptions options = new ChromeOptions();
        options.setBinary(CHROMIUM.toFile());
        options.addArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--user-data-dir=" + profile.toAbsolutePath(), "--window-size=1400,1500");
        ChromeDriverService service = new ChromeDriverService.Builder()
                .usingDriverExecutable(CHROMEDRIVER.toFile())
                .usingAnyFreePort()
                .build();
        return new ChromeDriver(service, options);
    }

    /** Waits until {@code url} answers 200 (the UI is up), failing early if the command already ended. */
    private static void awaitPage(String url, Supplier<Boolean> commandEnded, int seconds) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            try {
                if (status(url) == 200) {
                    return;
                }
            } catch (IOException notYet) {
                // not listening yet
            }
            if (commandEnded.get()) {
                fail("the command ended before its UI answered at " + url);
            }
            Thread.sleep(250);
        }
        fail("no answer from " + url + " within " + seconds + " s");
    }

    /** Waits until the chart {@code id} holds at least {@code n} points and returns how many it holds. */
    private static long awaitAtLeast(ChromeDriver browser, String id, long n, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        long seen = 0;
        while (System.nanoTime() < deadline) {
            seen = points(browser, id);
            if (seen >= n) {
                return seen;
            }
            Thread.sleep(200);
        }
        fail("#" + id + " holds " + seen + " points after " + seconds + " s, expected at least " + n);
        return seen;
    }

    private static long points(ChromeDriver browser, String id) {
        return (Long) js(browser, "var e = document.getElementById(arguments[0]);"
                + " return e ? parseInt(e.getAttribute('data-points') || '0', 10) : -1;", id);
    }

    private static long seriesPoints(ChromeDriver browser, String id, String series) {
        return (Long) js(browser, "var p = document.querySelector('#' + arguments[0] + ' path[data-series=\"' + arguments[1] + '\"]');"
                + " return p ? parseInt(p.getAttribute('data-points'), 10) : -1;", id, series);
    }

    private static Object js(ChromeDriver browser, String script, Object... args) {
        return ((JavascriptExecutor) browser).executeScript(script, args);
    }

    private static void screenshot(ChromeDriver browser, Path file) throws IOException {
        File png = browser.getScreenshotAs(OutputType.FILE);
        Files.copy(png.toPath(), file, StandardCopyOption.REPLACE_EXISTING);
    }

    private static int status(String url) throws IOException, InterruptedException {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10)).GET().build(),
                HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), 0));
            return s.getLocalPort();
        }
    }
}
