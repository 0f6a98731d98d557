package org.dl4jmtp.examples;

import picocli.CommandLine.Option;

/** MTP structure options shared by {@code eval} and {@code generate}. */
final class MtpOptions {

    @Option(names = "--mtp-depths", paramLabel = "D",
            description = "Forward MTP depths D (default: the checkpoint's num_nextn_predict_layers; 0 = no MTP).")
    Integer depths;

    @Option(names = "--mtp-repeated",
            description = "One physical MTP depth reused for all D depths (use_repeated_layer).")
    boolean repeated;

    @Option(names = "--allow-missing-mtp",
            description = "Accept a checkpoint without mtp.* weights: the MTP depths start from a fresh initialisation.")
    boolean allowMissingMtp;
}
