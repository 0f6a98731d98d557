package org.dl4jmtp.layers;

import java.util.Arrays;
import java.util.Locale;

/**
 * The largest array a native call can take. ND4J's CPU backend hands matrix products to OpenBLAS, whose 32-bit
 * indexing crashes the JVM (SIGSEGV, no Java exception) on an operand of more than 2^31 − 1 elements; such shapes are
 * refused here, before the call, with an exception naming the array and its shape.
 */
public final class NativeLimits {

    /** Elements of the largest operand a native BLAS call takes: 2^31 − 1. */
    public static final long MAX_ELEMENTS = Integer.MAX_VALUE;

    private NativeLimits() {
    }

    /** An array too large for a native call; the explicit layers add their name to the message. */
    public static final class ShapeLimitException extends IllegalArgumentException {
        public ShapeLimitException(String message) {
            super(message);
        }
    }

    /**
     * @param what  the array, as a reader of the error knows it (e.g. {@code "attention scores [B, heads, T, T]"})
     * @param shape its shape
     * @throws ShapeLimitException if it would hold more than {@link #MAX_ELEMENTS} elements
     */
    public static void check(String what, long... shape) {
        long elements = 1;
        for (long size : shape) {
            if (size > 0 && elements > Long.MAX_VALUE / size) {
                elements = Long.MAX_VALUE;
                break;
            }
            elements *= size;
        }
        if (elements > MAX_ELEMENTS) {
            throw new ShapeLimitException(String.format(Locale.ROOT, "%s %s would hold %,d elements; a native"
                    + " ND4J/BLAS call takes at most %,d (2^31 - 1) per array: use shorter sequences or a smaller batch",
                    what, Arrays.toString(shape), elements, MAX_ELEMENTS));
        }
    }

    /** Prefixes a refused shape's message with the layer that refused it. */
    public static ShapeLimitException inLayer(String layerName, ShapeLimitException e) {
        ShapeLimitException named = new ShapeLimitException("Layer " + layerName + ": " + e.getMessage());
        named.initCause(e);
        return named;
    }
}
