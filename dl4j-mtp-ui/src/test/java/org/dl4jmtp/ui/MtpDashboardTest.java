package org.dl4jmtp.ui;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.deeplearning4j.core.storage.Persistable;
import org.deeplearning4j.ui.model.storage.InMemoryStatsStorage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Records, storage round trips and the HTTP routes of the MTP module, without a browser and without the trainer. */
class MtpDashboardTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    @Test
    void aValidationRecordSurvivesEncoding() {
        Map<String, double[]> load = new LinkedHashMap<>();
        load.put("backbone.layers.3", new double[]{0.1, 0.2, 0.3, 0.4});
        MtpStatsRecord r = MtpStatsRecord.validation("s", 42L, 7, new double[]{2.5, 3.0, 3.5},
                new double[]{0.4, 0.3, 0.2}, new double[]{1, 0.6, 0.4}, 1.84, load);
        MtpStatsRecord back = new MtpStatsRecord();
        back.decode(r.encode());
        assertEquals(MtpStatsRecord.Kind.VALIDATION, back.kind());
        assertEquals("s", back.getSessionID());
        assertEquals(42L, back.getTimeStamp());
        assertEquals(7, back.step());
        assertArrayEquals(new double[]{2.5, 3.0, 3.5}, back.validationLoss());
        assertArrayEquals(new double[]{1, 0.6, 0.4}, back.accuracyVsMain());
        assertEquals(1.84, back.acceptanceLength());
        assertArrayEquals(new double[]{0.1, 0.2, 0.3, 0.4}, back.expertLoad().get("backbone.layers.3"));
        assertEquals(r.encode().length, r.encodingLengthBytes());
    }

    @Test
    void recordsInTheSameMillisecondDoNotOverwriteEachOtherAndLoadIsStoredAsFractions() throws Exception {
        InMemoryStatsStorage storage = new InMemoryStatsStorage();
        MtpStatsRecorder recorder = new MtpStatsRecorder(storage, "session-1");
        recorder.recordRunInfo("micro, D=2", 2);
        for (int step = 1; step <= 50; step++) {
            recorder.recordStep(step, 1e-3, 3.0, new double[]{2.8, 3.1, 3.3}, 1000);
        }
        recorder.recordValidation(50, new double[]{2.7, 3.0, 3.2}, new double[]{0.3, 0.2, 0.1},
                new double[]{1, 0.5, 0.3}, 1.6, Map.of("layer.3", new double[]{30, 10, 40, 20}));
        List<Persistable> all = storage.getAllUpdatesAfter("session-1", MtpStatsRecord.TYPE_ID, MtpStatsRecord.WORKER_ID, -1);
        assertEquals(51, all.size());
        MtpStatsRecord v = (MtpStatsRecord) all.get(50);
        assertArrayEquals(new double[]{0.3, 0.1, 0.4, 0.2}, v.expertLoad().get("layer.3"), 1e-12);
        assertTrue(storage.listWorkerIDsForSessionAndType("session-1", MtpStatsRecord.TYPE_ID).contains(MtpStatsRecord.WORKER_ID),
                "the static info makes the session's worker listable");
        storage.close();
    }

    @Test
    void theUiServesTheMtpPageItsDataAndTheStockPagesAndReopensTheStoredRun(@TempDir Path dir) throws Exception {
        Path stats = dir.resolve("run/stats.dl4j");
        ByteArrayOutputStream logBytes = new ByteArrayOutputStream();
        PrintStream log = new PrintStream(logBytes, true, StandardCharsets.UTF_8);
        Set<String> uploadDirectoriesBefore = uploadDirectories();
        int busy;
        String session;
        try (ServerSocket blocker = new ServerSocket()) {
            blocker.bind(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), 0));
            busy = blocker.getLocalPort();
            try (MtpDashboard ui = MtpDashboard.forTraining(stats, busy, 1, log)) {
                assertNotEquals(busy, ui.server().port(), "a busy port is not reused");
                assertTrue(logBytes.toString(StandardCharsets.UTF_8).contains("Port " + busy + " is in use; the training UI uses port "
                        + ui.server().port()), logBytes.toString(StandardCharsets.UTF_8));
                session = ui.recorder().sessionId();
                assertEquals(ui.statsListener().getSessionID(), session);
                ui.recorder().recordRunInfo("micro, D=2", 2);
                for (int step = 1; step <= 5; step++) {
                    ui.recorder().recordStep(step, 1e-3, 3.0, new double[]{2.8, 3.1, Double.NaN}, 1000);
                }
                ui.recorder().recordValidation(5, new double[]{2.7, 3.0, 3.2}, new double[]{0.3, 0.2, 0.1},
                        new double[]{1, 0.5, 0.3}, 1.6, Map.of("layer.3", new double[]{0.25, 0.25, 0.3, 0.2}));

                String base = "http://127.0.0.1:" + ui.server().port();
                assertEquals(200, get(base + "/mtp").statusCode());
                assertTrue(get(base + "/mtp").body().contains("chart-train-loss"));
                assertEquals(200, get(base + "/mtp/mtp.js").statusCode());
                assertEquals(200, get(base + "/train/overview").statusCode());
                assertTrue(get(base + "/assets/js/train/train.js").body().contains("mtp-nav-link"), "MTP link in the stock sidebar");

                JsonNode data = JSON.readTree(get(base + "/mtp/data").body());
                assertEquals(session, data.get("session").asText());
                assertEquals(5, data.get("steps").size());
                assertTrue(data.get("steps").get(0).get("heads").get(2).isNull(), "NaN is sent as null");
                assertEquals(1, data.get("validations").size());
                long last = data.get("lastTimestamp").asLong();
                ui.recorder().recordStep(6, 1e-3, 3.0, new double[]{2.7, 3.0, 3.2}, 1000);
                JsonNode newer = JSON.readTree(get(base + "/mtp/data?session=" + session + "&after=" + last).body());
                assertEquals(1, newer.get("steps").size(), "only the records after the last one seen");
                assertEquals(6, newer.get("steps").get(0).get("step").asInt());
            }
        }

        MtpUiException missing = assertThrows(MtpUiException.class,
                () -> MtpDashboard.forStoredRun(dir.resolve("nope/stats.dl4j"), 0, log));
        assertTrue(missing.getMessage().contains("No such stats file"), missing.getMessage());

        try (MtpDashboard stored = MtpDashboard.forStoredRun(stats, 0, log)) {
            String base = "http://127.0.0.1:" + stored.server().port();
            JsonNode data = JSON.readTree(get(base + "/mtp/data").body());
            assertEquals(session, data.get("session").asText());
            assertEquals(6, data.get("steps").size());
            assertEquals("micro, D=2", data.get("description").asText());
            assertEquals(200, get(base + "/train/overview").statusCode());
        }
        // the stock server's empty DL4JUI_<millis> upload directories do not pile up in java.io.tmpdir
        Set<String> left = uploadDirectories();
        left.removeAll(uploadDirectoriesBefore);
        assertEquals(Set.of(), left);
    }

    private static Set<String> uploadDirectories() {
        String[] names = new File(System.getProperty("java.io.tmpdir"))
                .list((parent, name) -> name.startsWith(MtpUiServer.UPLOAD_DIRECTORY_PREFIX));
        return names == null ? new TreeSet<>() : new TreeSet<>(Arrays.asList(names));
    }

    private static HttpResponse<String> get(String url) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }
}
