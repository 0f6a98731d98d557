package org.dl4jmtp.examples;

import org.nd4j.linalg.factory.Nd4j;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** Options of the ND4J runtime shared by the commands. */
final class RuntimeOptions {

    @Option(names = "--threads", paramLabel = "N",
            description = "Native threads per op (default: ND4J's, all cores). Small models run faster with 1,"
                    + " and so does everything when the cores are busy (also consider OMP_WAIT_POLICY=PASSIVE).")
    Integer threads;

    /** Applies the options before any model is built. */
    void apply(CommandLine cl) {
        if (threads != null) {
            if (threads < 1) {
                throw new CommandLine.ParameterException(cl, "--threads must be >= 1, got " + threads);
            }
            Nd4j.getEnvironment().setMaxThreads(threads);
            Nd4j.getEnvironment().setMaxMasterThreads(threads);
        }
    }
}
