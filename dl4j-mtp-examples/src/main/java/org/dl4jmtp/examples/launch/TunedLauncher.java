package org.dl4jmtp.examples.launch;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs a command line in a child JVM started with the {@link ProcessTuning} settings, since glibc, OpenMP and OpenBLAS
 * read theirs before any Java code could set them (the peer's {@code bench.py} re-executes itself for the same reason).
 *
 * <p>The child shares the parent's standard input, output and error (so a command's single JSON object reaches stdout
 * unchanged), and its exit code becomes the parent's. Ctrl-C reaches both (one process group); a SIGTERM to the parent
 * is passed on, and the parent waits for the child's own shutdown (a training run writes its checkpoint). A child whose
 * parent dies ({@code kill -9}) halts too, so nothing is left running.
 *
 * <p>Library users start their JVM with the same effect by calling {@link #relaunchIfNeeded} first thing in
 * {@code main}. {@value #OPT_OUT}=1 in the environment, or {@code --no-relaunch} on the command line, runs in the JVM
 * as started.
 */
public final class TunedLauncher {

    /** Set in the child's environment: it runs the command itself. */
    public static final String CHILD_MARK = "DL4JMTP_TUNED";
    /** Set to 1 to run in the JVM as started. */
    public static final String OPT_OUT = "DL4JMTP_NO_RELAUNCH";
    public static final String NO_RELAUNCH_OPTION = "--no-relaunch";
    private static final String PARENT_PID = "DL4JMTP_PARENT_PID";
    /** How long the parent waits for the child to finish its shutdown (a training run's Ctrl-C checkpoint). */
    private static final long SHUTDOWN_WAIT_SECONDS = 150;

    private TunedLauncher() {
    }

    /**
     * In the parent: runs {@code mainClass} with {@code args} in a tuned child JVM and exits with its exit code. In the
     * child (or when opted out): returns at once, after arranging to halt if the parent dies.
     */
    public static void relaunchIfNeeded(Class<?> mainClass, String[] args) {
        Map<String, String> env = System.getenv();
        if (env.containsKey(CHILD_MARK)) {
            haltWithParent(env.get(PARENT_PID));
            return;
        }
        if ("1".equals(env.get(OPT_OUT)) || Arrays.asList(args).contains(NO_RELAUNCH_OPTION)) {
            return;
        }
        int code;
        try {
            code = runChild(mainClass, args);
        } catch (IOException e) {
            System.err.println("warning: cannot start the tuned JVM (" + e.getMessage() + "); running untuned in this"
                    + " one (set " + OPT_OUT + "=1 to skip the attempt)");
            return;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            code = 130;
        }
        System.exit(code);
    }

    private static int runChild(Class<?> mainClass, String[] args) throws IOException, InterruptedException {
        List<String> jvmOptions = ManagementFactory.getRuntimeMXBean().getInputArguments();
        ProcessTuning.Plan plan = ProcessTuning.plan(System.getenv(), jvmOptions, CpuKernels.cpuFlags(),
                physicalMemory(), subcommand(args));
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(jvmOptions);
        command.addAll(plan.jvmOptions());
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        command.add(mainClass.getName());
        command.addAll(Arrays.asList(args));
        ProcessBuilder builder = new ProcessBuilder(command).inheritIO();
        builder.environment().putAll(plan.environment());
        builder.environment().put(CHILD_MARK, "1");
        builder.environment().put(PARENT_PID, Long.toString(ProcessHandle.current().pid()));
        Process child = builder.start();
        Thread passOnShutdown = new Thread(() -> {
            if (child.isAlive()) {
                child.destroy();                      // SIGTERM: the child's own shutdown hooks run
                try {
                    child.waitFor(SHUTDOWN_WAIT_SECONDS, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }, "dl4j-mtp-pass-on-shutdown");
        Runtime.getRuntime().addShutdownHook(passOnShutdown);
        int code = child.waitFor();
        try {
            Runtime.getRuntime().removeShutdownHook(passOnShutdown);
        } catch (IllegalStateException shuttingDown) {
            // the hook is running: it waits for the child, which has exited
        }
        return code;
    }

    /** The first argument that is not an option: the subcommand, or null. */
    static String subcommand(String[] args) {
        return Arrays.stream(args).filter(a -> !a.startsWith("-")).findFirst().orElse(null);
    }

    private static void haltWithParent(String parentPid) {
        if (parentPid == null) {
            return;
        }
        try {
            ProcessHandle.of(Long.parseLong(parentPid)).ifPresentOrElse(
                    parent -> parent.onExit().thenRun(() -> Runtime.getRuntime().halt(137)),
                    () -> Runtime.getRuntime().halt(137));
        } catch (NumberFormatException ignored) {
            // not set by this launcher
        }
    }

    private static long physicalMemory() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getTotalMemorySize();
    }
}
