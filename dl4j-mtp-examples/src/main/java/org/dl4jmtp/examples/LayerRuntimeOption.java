package org.dl4jmtp.examples;

import org.dl4jmtp.layers.LayerRuntime;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** {@code --runtime}: which computation the model's layers run (train, eval, generate, bench). */
public final class LayerRuntimeOption {

    @Option(names = "--runtime", paramLabel = "explicit|samediff", defaultValue = "explicit",
            description = "explicit (default: ND4J ops with a explicit backprop, sparse MoE, cached decoding) or"
                    + " samediff (every layer executes its SameDiff definition: the reference, slower, dense MoE,"
                    + " decoding by full recomputation).")
    String name = "explicit";

    /** The selected runtime; an unknown name is a usage error naming the option (cl may be null outside picocli). */
    public LayerRuntime get(CommandLine cl) {
        if (cl == null) {
            return LayerRuntime.parse(name);
        }
        try {
            return LayerRuntime.parse(name);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(cl, "--runtime: " + e.getMessage());
        }
    }
}
