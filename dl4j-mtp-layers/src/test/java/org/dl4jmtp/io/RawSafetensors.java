package org.dl4jmtp.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Builds safetensors files byte by byte, independently of {@link SafetensorsWriter}, for reader tests. */
final class RawSafetensors {

    private RawSafetensors() {
    }

    /** A file whose 8-byte prefix is the true header length, then the header, then {@code data}. */
    static byte[] file(String headerJson, byte[] data) {
        byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
        return withDeclaredLength(header.length, concat(header, data));
    }

    /** A file with {@code dataBytes} zero bytes of data. */
    static byte[] file(String headerJson, int dataBytes) {
        return file(headerJson, new byte[dataBytes]);
    }

    /** An arbitrary (possibly lying) header length prefix followed by {@code rest}. */
    static byte[] withDeclaredLength(long declaredHeaderLength, byte[] rest) {
        ByteBuffer bb = ByteBuffer.allocate(8 + rest.length).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(declaredHeaderLength).put(rest);
        return bb.array();
    }

    /** Little-endian 16-bit values, e.g. F16/BF16 bit patterns. */
    static byte[] shorts(int... values) {
        ByteBuffer bb = ByteBuffer.allocate(2 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : values) {
            bb.putShort((short) v);
        }
        return bb.array();
    }

    static Path write(Path file, byte[] bytes) throws IOException {
        Files.write(file, bytes);
        return file;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = new byte[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
