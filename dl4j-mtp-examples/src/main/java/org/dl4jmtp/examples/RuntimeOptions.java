package org.dl4jmtp.examples;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.launch.IntraOpThreads;
import org.dl4jmtp.examples.launch.ReplicaPolicy;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** Options of the ND4J runtime shared by the commands. */
final class RuntimeOptions {

    @Option(names = "--threads", paramLabel = "N",
            description = "Native threads per op (default: all cores; generate and bench-decode use 1 for a small"
                    + " model). Small models run faster with 1, and so does everything when the cores are busy.")
    Integer threads;

    /** Applies the options before any model is built. */
    void apply(CommandLine cl) {
        if (threads != null) {
            if (threads < 1) {
                throw new CommandLine.ParameterException(cl, "--threads must be >= 1, got " + threads);
            }
            IntraOpThreads.use(threads);
        }
    }

    /** Without --threads, the threads for decoding this model ({@link ReplicaPolicy#decodeThreads}) when the launcher
     *  left them to dl4j-mtp. */
    void applyDecodingDefault(NemotronV3Config config, MtpConfig mtp) {
        if (threads == null) {
            IntraOpThreads.applyIfAuto(ReplicaPolicy.decodeThreads(config, mtp));
        }
    }
}
