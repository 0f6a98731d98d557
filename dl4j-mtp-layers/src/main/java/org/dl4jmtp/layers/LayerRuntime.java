package org.dl4jmtp.layers;

import java.util.Locale;

/**
 * How a dl4j-mtp layer computes. Every layer configuration carries both: its SameDiff definition and its explicit
 * forward pass and backprop written with ND4J ops. Which one runs is this setting alone (chosen once for a graph by
 * {@code NemotronV3GraphBuilder.runtime(...)}, or for a loaded graph by {@link Runtimes#apply}); the parameters,
 * their layout and the results are the same.
 */
public enum LayerRuntime {

    /** ND4J ops with a explicit backprop, sparse MoE dispatch, one forward pass per step: the fast default. */
    EXPLICIT,

    /**
     * The layer's SameDiff definition executed by DL4J's SameDiff layer runtime (autodiff backprop; MoE computed densely
     * under the top-k mask). The reference the explicit runtime is tested against; slower.
     */
    SAMEDIFF;

    /** The runtime named {@code name} (case-insensitive: {@code explicit} or {@code samediff}). */
    public static LayerRuntime parse(String name) {
        for (LayerRuntime runtime : values()) {
            if (runtime.name().equalsIgnoreCase(name.trim())) {
                return runtime;
            }
        }
        throw new IllegalArgumentException("Unknown runtime '" + name + "': expected explicit or samediff");
    }

    /** The lower-case name used on the command line and in JSON reports. */
    public String cliName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
