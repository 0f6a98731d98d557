package org.dl4jmtp.losses;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The first flagged entry of a [B, T] array of ids that failed a check, read on the host only to word the error: the
 * checks themselves are array reductions, and this runs once, when a batch is refused (never in a training step).
 *
 * @param value    the offending id
 * @param position "[b, t]"
 */
public record RejectedId(double value, String position) {

    /** @param flags [B, T], non-zero where {@code values} [B, T] failed; at least one entry is flagged */
    public static RejectedId first(INDArray flags, INDArray values) {
        for (long b = 0; b < flags.size(0); b++) {
            for (long t = 0; t < flags.size(1); t++) {
                if (flags.getDouble(b, t) != 0) {
                    return new RejectedId(values.getDouble(b, t), "[" + b + ", " + t + "]");
                }
            }
        }
        throw new IllegalArgumentException("no flagged entry");
    }
}
