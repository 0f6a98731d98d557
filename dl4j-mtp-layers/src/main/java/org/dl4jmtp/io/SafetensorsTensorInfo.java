package org.dl4jmtp.io;

import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor entry of a safetensors header: its name, dtype, shape (row-major) and byte range
 * {@code [begin, end)} relative to the start of the data section.
 *
 * <p>The shape array is copied on the way in and out, so an instance is immutable; equality compares shapes by
 * content.
 */
public record SafetensorsTensorInfo(String name, SafetensorsDType dtype, long[] shape, long begin, long end) {

    public SafetensorsTensorInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        shape = Objects.requireNonNull(shape, "shape").clone();
    }

    /** A copy of the shape; {@code []} for a scalar. */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Number of dimensions (0 for a scalar). */
    public int rank() {
        return shape.length;
    }

    /** Product of the dimensions: 1 for a scalar, 0 when any dimension is 0. */
    public long numElements() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** {@code end - begin}, the size of the tensor's data in bytes. */
    public long byteLength() {
        return end - begin;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SafetensorsTensorInfo other
                && name.equals(other.name) && dtype == other.dtype && Arrays.equals(shape, other.shape)
                && begin == other.begin && end == other.end;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, dtype, Arrays.hashCode(shape), begin, end);
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape) + " @[" + begin + ", " + end + ")";
    }
}
