package org.dl4jmtp.ui;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vertx.ext.web.RoutingContext;
import org.deeplearning4j.core.storage.Persistable;
import org.deeplearning4j.core.storage.StatsStorage;
import org.deeplearning4j.core.storage.StatsStorageEvent;
import org.deeplearning4j.ui.api.HttpMethod;
import org.deeplearning4j.ui.api.Route;
import org.deeplearning4j.ui.api.UIModule;
import org.deeplearning4j.ui.i18n.I18NResource;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;

/**
 * The MTP page of the DL4J training UI, found by {@code VertxUIServer} through {@code ServiceLoader}
 * ({@code META-INF/services/org.deeplearning4j.ui.api.UIModule}).
 *
 * <p>Routes:
 * <ul>
 *   <li>{@code GET /mtp}: the page (hand-written SVG charts, polls the data route every 2 s);</li>
 *   <li>{@code GET /mtp/data?session=ID&after=T}: the session's {@link MtpStatsRecord}s newer than timestamp T, as JSON
 *       (without {@code session}: the most recently updated session that has MTP records);</li>
 *   <li>{@code GET /mtp/sessions}: the sessions with MTP records in the attached storages;</li>
 *   <li>{@code GET /mtp/mtp.js}, {@code /mtp/mtp.css}: the page's script and style.</li>
 * </ul>
 */
public final class MtpUIModule implements UIModule {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final List<StatsStorage> storages = new CopyOnWriteArrayList<>();

    @Override
    public List<String> getCallbackTypeIDs() {
        return Collections.singletonList(MtpStatsRecord.TYPE_ID);
    }

    @Override
    public List<Route> getRoutes() {
        return List.of(
                new Route("/mtp", HttpMethod.GET, (path, rc) -> resource(rc, "mtp.html", "text/html; charset=utf-8")),
                new Route("/mtp/mtp.js", HttpMethod.GET, (path, rc) -> resource(rc, "mtp.js", "application/javascript; charset=utf-8")),
                new Route("/mtp/mtp.css", HttpMethod.GET, (path, rc) -> resource(rc, "mtp.css", "text/css; charset=utf-8")),
                new Route("/mtp/sessions", HttpMethod.GET, (path, rc) -> json(rc, this::sessionsJson)),
                new Route("/mtp/data", HttpMethod.GET, (path, rc) -> {
                    String session = rc.request().getParam("session");
                    long after = parseLong(rc.request().getParam("after"));
                    json(rc, () -> dataJson(session, after));
                }));
    }

    /** The page reads the storages on each poll: nothing to route. */
    @Override
    public void reportStorageEvents(Collection<StatsStorageEvent> events) {
    }

    @Override
    public void onAttach(StatsStorage statsStorage) {
        if (!storages.contains(statsStorage)) {
            storages.add(statsStorage);
        }
    }

    @Override
    public void onDetach(StatsStorage statsStorage) {
        storages.remove(statsStorage);
    }

    @Override
    public List<I18NResource> getInternationalizationResources() {
        return Collections.emptyList();
    }

    // ----- JSON -----

    /** A session with MTP records, in one of the attached storages. */
    record Session(String id, StatsStorage storage, long lastUpdate, String description, int depths) {
    }

    List<Session> sessions() {
        List<Session> out = new ArrayList<>();
        for (StatsStorage storage : storages) {
            if (storage.isClosed()) {
                continue;
            }
            for (String id : storage.listSessionIDs()) {
                if (!storage.listTypeIDsForSession(id).contains(MtpStatsRecord.TYPE_ID)) {
                    continue;
                }
                Persistable info = storage.getStaticInfo(id, MtpStatsRecord.TYPE_ID, MtpStatsRecord.WORKER_ID);
                Persistable latest = storage.getLatestUpdate(id, MtpStatsRecord.TYPE_ID, MtpStatsRecord.WORKER_ID);
                long last = latest != null ? latest.getTimeStamp() : info != null ? info.getTimeStamp() : 0;
                String description = info instanceof MtpStatsRecord r ? r.description() : "";
                int depths = info instanceof MtpStatsRecord r ? r.depths() : 0;
                out.add(new Session(id, storage, last, description, depths));
            }
        }
        out.sort((a, b) -> Long.compare(b.lastUpdate(), a.lastUpdate()));   // most recent first
        return out;
    }

    ObjectNode sessionsJson() {
        ObjectNode root = JSON.createObjectNode();
        ArrayNode list = root.putArray("sessions");
        for (Session s : sessions()) {
            ObjectNode n = list.addObject();
            n.put("id", s.id());
            n.put("description", s.description());
            n.put("depths", s.depths());
            n.put("lastUpdate", s.lastUpdate());
            n.put("storage", s.storage().toString());
        }
        return root;
    }

    /**
     * The records of {@code sessionId} (or of the most recent session) newer than {@code after}, split into
     * {@code steps} and {@code validations}, oldest first. Non-finite numbers become {@code null} (JSON has no NaN).
     */
    ObjectNode dataJson(String sessionId, long after) {
        List<Session> sessions = sessions();
        ObjectNode root = JSON.createObjectNode();
        ArrayNode ids = root.putArray("sessions");
        sessions.forEach(s -> ids.add(s.id()));
        Session session = null;
        for (Session s : sessions) {
            if (sessionId == null || sessionId.isEmpty() ? session == null : s.id().equals(sessionId)) {
                session = s;
            }
        }
        if (session == null) {
            root.putNull("session");
            root.put("lastTimestamp", after);
            root.putArray("steps");
            root.putArray("validations");
            return root;
        }
        root.put("session", session.id());
        root.put("description", session.description());
        root.put("depths", session.depths());
        ArrayNode steps = root.putArray("steps");
        ArrayNode validations = root.putArray("validations");
        long last = after;
        for (Persistable p : session.storage().getAllUpdatesAfter(session.id(), MtpStatsRecord.TYPE_ID,
                MtpStatsRecord.WORKER_ID, after)) {
            if (!(p instanceof MtpStatsRecord r)) {
                continue;
            }
            last = Math.max(last, r.getTimeStamp());
            if (r.kind() == MtpStatsRecord.Kind.STEP) {
                ObjectNode n = steps.addObject();
                n.put("step", r.step());
                number(n, "lr", r.learningRate());
                number(n, "loss", r.totalLoss());
                array(n, "heads", r.trainLoss());
                number(n, "tokensPerSecond", r.tokensPerSecond());
            } else if (r.kind() == MtpStatsRecord.Kind.VALIDATION) {
                ObjectNode n = validations.addObject();
                n.put("step", r.step());
                array(n, "loss", r.validationLoss());
                array(n, "accuracyVsLabels", r.accuracyVsLabels());
                array(n, "accuracyVsMain", r.accuracyVsMain());
                number(n, "acceptanceLength", r.acceptanceLength());
                ObjectNode load = n.putObject("expertLoad");
                for (Map.Entry<String, double[]> e : r.expertLoad().entrySet()) {
                    array(load, e.getKey(), e.getValue());
                }
            }
        }
        root.put("lastTimestamp", last);
        return root;
    }

    private static void number(ObjectNode n, String field, double v) {
        if (Double.isFinite(v)) {
            n.put(field, v);
        } else {
            n.putNull(field);
        }
    }

    private static void array(ObjectNode n, String field, double[] values) {
        ArrayNode a = n.putArray(field);
        for (double v : values) {
            if (Double.isFinite(v)) {
                a.add(v);
            } else {
                a.addNull();
            }
        }
    }

    private static long parseLong(String s) {
        if (s == null || s.isEmpty()) {
            return -1;
        }
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** Reads the storage off the event loop (a long stored run takes a while to decode), then answers. */
    private static void json(RoutingContext rc, Supplier<ObjectNode> body) {
        rc.vertx().<String>executeBlocking(promise -> {
            try {
                promise.complete(JSON.writeValueAsString(body.get()));
            } catch (IOException | RuntimeException e) {
                promise.fail(e);
            }
        }, false, result -> {
            if (result.succeeded()) {
                rc.response().putHeader("content-type", "application/json; charset=utf-8")
                        .putHeader("cache-control", "no-store")
                        .end(result.result());
            } else {
                rc.response().setStatusCode(500).putHeader("content-type", "text/plain; charset=utf-8")
                        .end("Cannot read the MTP stats: " + result.cause());
            }
        });
    }

    private static void resource(RoutingContext rc, String name, String contentType) {
        rc.response().putHeader("content-type", contentType).end(readResource(name));
    }

    static String readResource(String name) {
        try (InputStream in = MtpUIModule.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("Missing resource org/dl4jmtp/ui/" + name);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
