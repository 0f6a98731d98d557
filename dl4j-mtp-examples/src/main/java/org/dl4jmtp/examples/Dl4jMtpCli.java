package org.dl4jmtp.examples;

import org.dl4jmtp.examples.launch.TunedLauncher;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;

/**
 * The runnable jar: {@code java -jar dl4j-mtp.jar info|eval|generate ...}.
 *
 * <p>Exit codes: 0 success, 1 a problem with the given files or values (one clear message on stderr; its stack
 * trace too with {@code --verbose}), 2 a usage error (picocli's message and the usage help).
 */
@Command(name = "dl4j-mtp",
        mixinStandardHelpOptions = true,
        versionProvider = Dl4jMtpCli.Version.class,
        description = "NemotronV3 hybrid models with Multi-Token Prediction on Deeplearning4j.",
        subcommands = {InfoCommand.class, EvalCommand.class, GenerateCommand.class, ConvertCommand.class,
                org.dl4jmtp.examples.train.TrainCommand.class, org.dl4jmtp.examples.ui.UiCommand.class,
                org.dl4jmtp.examples.bench.BenchCommand.class, BenchDecodeCommand.class,
                CommandLine.HelpCommand.class})
public final class Dl4jMtpCli implements Runnable {

    @Spec
    CommandSpec spec;

    /** Read from the parse result (it may be given before or after the subcommand), not from this field. */
    @Option(names = "--verbose", scope = ScopeType.INHERIT,
            description = "On an error in the given files or values, also print its stack trace.")
    boolean verbose;

    /** Read by {@link TunedLauncher} before parsing; declared so that the command line accepts it. */
    @Option(names = TunedLauncher.NO_RELAUNCH_OPTION, scope = ScopeType.INHERIT,
            description = "Run in this JVM as started, without the tuned child process (malloc, OpenMP and OpenBLAS"
                    + " settings; see the README, \"Speed without flags\").")
    boolean noRelaunch;

    @Override
    public void run() {
        throw new ParameterException(spec.commandLine(), "Missing required subcommand ("
                + String.join(", ", spec.subcommands().keySet()) + ")");
    }

    /** The configured command line: case-insensitive enum values and clean error reporting. */
    public static CommandLine newCommandLine() {
        CommandLine cl = new CommandLine(new Dl4jMtpCli());
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionExceptionHandler(Dl4jMtpCli::handleExecutionException);
        return cl;
    }

    public static void main(String[] args) {
        // glibc, OpenMP and OpenBLAS read their settings at start-up: run the command in a JVM started with them
        TunedLauncher.relaunchIfNeeded(Dl4jMtpCli.class, args);
        // The jar has no SLF4J provider, so nothing is logged; SLF4J's three-line warning about that would otherwise
        // come before the one-line error messages on stderr. -Dslf4j.internal.verbosity=WARN brings it back.
        if (System.getProperty("slf4j.internal.verbosity") == null) {
            System.setProperty("slf4j.internal.verbosity", "ERROR");
        }
        // stdout carries only the commands' output (JSON): ND4J/SameDiff print progress to System.out, so route
        // System.out to stderr and give picocli the real stdout
        PrintStream stdout = System.out;
        System.setOut(System.err);
        CommandLine cl = newCommandLine();
        cl.setOut(new PrintWriter(new OutputStreamWriter(stdout, StandardCharsets.UTF_8), true));
        int code = cl.execute(args);
        stdout.flush();
        System.exit(code);
    }

    /**
     * User errors: one line on stderr (and the stack trace with {@code --verbose}), exit code 1. Anything else is a
     * bug: its stack trace, exit code 1.
     */
    private static int handleExecutionException(Exception ex, CommandLine cl, CommandLine.ParseResult parseResult) {
        String command = cl.getCommandSpec().qualifiedName();
        String message = userMessage(ex);
        if (message != null) {
            cl.getErr().println(command + ": error: " + message);
            if (verbose(parseResult)) {
                ex.printStackTrace(cl.getErr());
            }
        } else {
            cl.getErr().println(command + ": internal error (please report): " + ex);
            ex.printStackTrace(cl.getErr());
        }
        cl.getErr().flush();
        return 1;
    }

    /** Whether {@code --verbose} was given to the top-level command or to any subcommand on the way. */
    private static boolean verbose(CommandLine.ParseResult parseResult) {
        for (CommandLine.ParseResult r = parseResult; r != null; r = r.subcommand()) {
            if (r.hasMatchedOption("--verbose")) {
                return true;
            }
        }
        return false;
    }

    /** The message of a user error, or null when {@code ex} is not one. */
    static String userMessage(Throwable ex) {
        if (ex instanceof UserException) {
            return ex.getMessage();
        }
        if (ex instanceof UncheckedIOException && ex.getCause() != null) {
            return userMessage(ex.getCause());
        }
        if (ex instanceof NoSuchFileException e) {
            return "no such file: " + e.getFile() + (e.getReason() != null ? " (" + e.getReason() + ")" : "");
        }
        if (ex instanceof AccessDeniedException e) {
            return "permission denied: " + e.getFile();
        }
        if (ex instanceof FileSystemException e) {
            return e.getMessage();
        }
        if (ex instanceof IOException) {
            return ex.getMessage() != null ? ex.getMessage() : ex.toString();
        }
        if (ex instanceof IllegalArgumentException && ex.getMessage() != null) {
            return ex.getMessage();
        }
        return null;
    }

    /** {@code --version}. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Dl4jMtpCli.class.getPackage().getImplementationVersion();
            return new String[]{"dl4j-mtp " + (v != null ? v : "0.1.0-SNAPSHOT") + " (Deeplearning4j 1.0.0-M2.1)"};
        }
    }
}
