package org.dl4jmtp.ui;

import io.vertx.core.Context;
import io.vertx.core.Handler;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.impl.VertxInternal;
import org.deeplearning4j.config.DL4JSystemProperties;
import org.deeplearning4j.core.storage.StatsStorage;
import org.deeplearning4j.ui.VertxUIServer;

import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.net.BindException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Starts DL4J's training UI ({@link VertxUIServer}: stock overview, model and system pages, plus {@link MtpUIModule}
 * found through ServiceLoader) on the loopback interface, and adds an "MTP" entry to the stock pages' sidebar.
 *
 * <p>What differs from {@code UIServer.getInstance()}:
 * <ul>
 *   <li>It listens on {@code 127.0.0.1} only (the stock server listens on every interface).</li>
 *   <li>A busy port is not an error: the next free port (up to {@value #PORT_SEARCH} above) is used and said out loud.</li>
 *   <li>The stock pages' {@code train.js} is served with a few lines appended that add the sidebar link to {@code /mtp}.</li>
 * </ul>
 * The DL4J UI is one per JVM: {@link #start} stops a previous instance, {@link #close} stops this one.
 */
public final class MtpUiServer implements AutoCloseable {

    /** DL4J's default UI port. */
    public static final int DEFAULT_PORT = VertxUIServer.DEFAULT_UI_PORT;
    static final int PORT_SEARCH = 20;
    static final String HOST = "127.0.0.1";
    private static final String STOCK_TRAIN_JS = "/assets/js/train/train.js";
    static final String UPLOAD_DIRECTORY_PREFIX = "DL4JUI_";

    private final LoopbackVertxUIServer server;
    private final Thread shutdownHook;
    private volatile boolean closed;

    private MtpUiServer(LoopbackVertxUIServer server) {
        this.server = server;
        this.shutdownHook = new Thread(this::stopQuietly, "dl4j-mtp-ui-shutdown");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /**
     * Starts the UI on {@code requestedPort} or, if it is busy, on the next free port (said on {@code log}).
     *
     * @param requestedPort 1..65535, or 0 for any free port
     * @throws MtpUiException if no port is free or the server does not start (a message for the user)
     */
    public static MtpUiServer start(int requestedPort, PrintStream log) {
        if (requestedPort < 0 || requestedPort > 0xFFFF) {
            throw new MtpUiException("UI port must be between 0 and 65535, got " + requestedPort);
        }
        stopRunningInstance();
        int port = requestedPort == 0 ? 0 : freePort(requestedPort, log);
        String previous = System.getProperty(DL4JSystemProperties.UI_SERVER_PORT_PROPERTY);
        // VertxUIServer reads its port from this property (it overrides any port given to its getInstance)
        System.setProperty(DL4JSystemProperties.UI_SERVER_PORT_PROPERTY, Integer.toString(port));
        Vertx vertx = Vertx.vertx();
        try {
            CompletableFuture<String> deployed = new CompletableFuture<>();
            LoopbackVertxUIServer verticle = new LoopbackVertxUIServer();
            vertx.deployVerticle(verticle, result -> {
                if (result.succeeded()) {
                    deployed.complete(result.result());
                } else {
                    deployed.completeExceptionally(result.cause());
                }
            });
            deployed.get(120, TimeUnit.SECONDS);
            return new MtpUiServer(verticle);
        } catch (ExecutionException | TimeoutException e) {
            vertx.close();
            stopRunningInstance();
            Throwable cause = e instanceof ExecutionException ? rootCause(e) : e;
            if (cause instanceof BindException) {
                throw new MtpUiException("Cannot start the training UI: port " + port + " on " + HOST
                        + " is in use (" + cause.getMessage() + "); choose another with --ui-port", e);
            }
            throw new MtpUiException("Cannot start the training UI on port " + port + ": " + cause, e);
        } catch (InterruptedException e) {
            vertx.close();
            Thread.currentThread().interrupt();
            throw new MtpUiException("Interrupted while starting the training UI", e);
        } finally {
            if (previous == null) {
                System.clearProperty(DL4JSystemProperties.UI_SERVER_PORT_PROPERTY);
            } else {
                System.setProperty(DL4JSystemProperties.UI_SERVER_PORT_PROPERTY, previous);
            }
        }
    }

    /** The port asked for by {@code -Dorg.deeplearning4j.ui.port}, else {@link #DEFAULT_PORT}. */
    public static int defaultPort() {
        String prop = System.getProperty(DL4JSystemProperties.UI_SERVER_PORT_PROPERTY);
        if (prop != null && !prop.isBlank()) {
            try {
                return Integer.parseInt(prop.trim());
            } catch (NumberFormatException e) {
                throw new MtpUiException("-D" + DL4JSystemProperties.UI_SERVER_PORT_PROPERTY + "=" + prop
                        + " is not a port number");
            }
        }
        return DEFAULT_PORT;
    }

    public int port() {
        return server.getPort();
    }

    /** {@code http://localhost:PORT} (the stock pages are under {@code /train}). */
    public String url() {
        return "http://localhost:" + port();
    }

    /** The MTP page. */
    public String mtpUrl() {
        return url() + "/mtp";
    }

    public void attach(StatsStorage storage) {
        server.attach(storage);
    }

    public void detach(StatsStorage storage) {
        server.detach(storage);
    }

    @Override
    public void close() {
        stopQuietly();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException shuttingDown) {
            // the JVM is exiting: the hook stops the server
        }
    }

    private synchronized void stopQuietly() {
        if (closed) {
            return;
        }
        closed = true;
        for (StatsStorage s : server.getStatsStorageInstances()) {
            try {
                server.detach(s);
            } catch (RuntimeException closedUnderUs) {
                // on Ctrl-C, MapDB's shutdown hook may have closed a FileStatsStorage already: nothing to detach from
            }
        }
        try {
            if (VertxUIServer.getInstance() == server) {
                VertxUIServer.stopInstance();
            } else if (!server.isStopped()) {
                server.stop();
            }
        } catch (Exception e) {
            // stopping Vert.x failed: nothing useful to do while closing
        }
        server.removeEmptyUploadDirectory();
    }

    private static void stopRunningInstance() {
        try {
            VertxUIServer.stopInstance();
        } catch (Exception e) {
            throw new MtpUiException("Cannot stop the DL4J UI server already running in this JVM: " + e, e);
        }
    }

    /** {@code requested} if free on the loopback interface, else the next free port, said on {@code log}. */
    static int freePort(int requested, PrintStream log) {
        int last = Math.min(0xFFFF, requested + PORT_SEARCH);
        for (int port = requested; port <= last; port++) {
            if (isFree(port)) {
                if (port != requested) {
                    log.println("Port " + requested + " is in use; the training UI uses port " + port + " instead.");
                }
                return port;
            }
        }
        throw new MtpUiException("Cannot start the training UI: ports " + requested + " to " + last + " on " + HOST
                + " are all in use; choose another with --ui-port");
    }

    static boolean isFree(int port) {
        try (ServerSocket socket = new ServerSocket()) {
            socket.setReuseAddress(false);
            socket.bind(new InetSocketAddress(InetAddress.getByName(HOST), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static Throwable rootCause(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && c.getCause() != c) {
            c = c.getCause();
        }
        return c;
    }

    /**
     * The stock server with its Vert.x handle wrapped: {@code createHttpServer()} returns a server whose
     * {@code listen(port, handler)} binds {@link #HOST} instead of 0.0.0.0 and whose request handler adds the MTP link
     * to the stock {@code train.js}. Everything else is the stock {@link VertxUIServer}.
     */
    static final class LoopbackVertxUIServer extends VertxUIServer {
        private volatile long startedFrom;
        private volatile long startedTo = -1;

        @Override
        public void init(Vertx vertx, Context context) {
            super.init(loopbackVertx(vertx), context);
        }

        /** Notes when the stock start ran: it names its upload directory after the time (DL4JUI_millis). */
        @Override
        public void start(Promise<Void> startCallback) throws Exception {
            startedFrom = System.currentTimeMillis();
            try {
                super.start(startCallback);
            } finally {
                startedTo = System.currentTimeMillis();
            }
        }

        /**
         * The stock server makes an upload directory {@code java.io.tmpdir/DL4JUI_<start millis>} on every start and
         * never removes it; this removes ours when nothing was uploaded into it.
         */
        void removeEmptyUploadDirectory() {
            for (long millis = startedFrom; millis <= startedTo; millis++) {
                File dir = new File(System.getProperty("java.io.tmpdir"), UPLOAD_DIRECTORY_PREFIX + millis);
                String[] entries = dir.list();
                if (entries != null && entries.length == 0) {
                    dir.delete();   // if that fails, an empty directory is left: it harms nothing
                }
            }
        }
    }

    private static Vertx loopbackVertx(Vertx vertx) {
        InvocationHandler handler = (proxy, method, args) -> {
            Object result = invoke(vertx, method, args);
            if (method.getName().equals("createHttpServer") && result instanceof HttpServer s) {
                return loopbackHttpServer(s);
            }
            return result == vertx ? proxy : result;
        };
        return (Vertx) Proxy.newProxyInstance(MtpUiServer.class.getClassLoader(),
                new Class<?>[]{vertx instanceof VertxInternal ? VertxInternal.class : Vertx.class}, handler);
    }

    private static HttpServer loopbackHttpServer(HttpServer server) {
        InvocationHandler handler = (proxy, method, args) -> {
            Class<?>[] types = method.getParameterTypes();
            Object result;
            if (method.getName().equals("listen") && types.length == 2 && types[0] == int.class
                    && types[1] == Handler.class) {
                result = server.listen((Integer) args[0], HOST, castHandler(args[1]));
            } else if (method.getName().equals("listen") && types.length == 1 && types[0] == int.class) {
                result = server.listen((Integer) args[0], HOST);
            } else if (method.getName().equals("requestHandler") && types.length == 1 && args[0] != null) {
                result = server.requestHandler(withMtpNavLink(castHandler(args[0])));
            } else {
                result = invoke(server, method, args);
            }
            return result == server ? proxy : result;
        };
        return (HttpServer) Proxy.newProxyInstance(MtpUiServer.class.getClassLoader(), new Class<?>[]{HttpServer.class},
                handler);
    }

    private static Handler<HttpServerRequest> withMtpNavLink(Handler<HttpServerRequest> stock) {
        String trainJs = StockAssets.trainJsWithMtpLink();
        return request -> {
            if (STOCK_TRAIN_JS.equals(request.path()) && trainJs != null) {
                request.response().putHeader("content-type", "application/javascript; charset=utf-8").end(trainJs);
            } else {
                stock.handle(request);
            }
        };
    }

    @SuppressWarnings("unchecked")
    private static <T> Handler<T> castHandler(Object handler) {
        return (Handler<T>) handler;
    }

    private static Object invoke(Object target, Method method, Object[] args) throws Throwable {
        try {
            return method.invoke(target, args);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    /** The stock {@code train.js} (included by the overview, model and system pages) plus the sidebar link. */
    static final class StockAssets {
        private StockAssets() {
        }

        static String trainJsWithMtpLink() {
            try (var in = VertxUIServer.class.getClassLoader()
                    .getResourceAsStream(VertxUIServer.ASSETS_ROOT_DIRECTORY + "js/train/train.js")) {
                if (in == null) {
                    return null;
                }
                String stock = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
                return stock + "\n" + MtpUIModule.readResource("mtp-nav.js");
            } catch (IOException e) {
                return null;
            }
        }
    }
}
