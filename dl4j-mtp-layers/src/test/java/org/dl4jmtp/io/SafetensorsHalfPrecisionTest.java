package org.dl4jmtp.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** F16 and BF16 bit patterns written by hand, read back as exact floats. */
class SafetensorsHalfPrecisionTest {

    @TempDir
    Path dir;

    /** Reference decoding of binary16, computed in double from the definition (independent of the bit shuffling). */
    private static double f16Reference(int bits) {
        int sign = (bits >> 15) & 1;
        int exponent = (bits >> 10) & 0x1F;
        int mantissa = bits & 0x3FF;
        double magnitude;
        if (exponent == 0x1F) {
            magnitude = mantissa == 0 ? Double.POSITIVE_INFINITY : Double.NaN;
        } else if (exponent == 0) {
            magnitude = mantissa * Math.pow(2, -24);
        } else {
            magnitude = (1024 + mantissa) * Math.pow(2, exponent - 25);
        }
        return sign == 1 ? -magnitude : magnitude;
    }

    @Test
    void f16ConversionIsExactForAllBitPatterns() {
        for (int bits = 0; bits <= 0xFFFF; bits++) {
            float actual = SafetensorsDType.f16ToFloat((short) bits);
            double expected = f16Reference(bits);
            if (Double.isNaN(expected)) {
                assertTrue(Float.isNaN(actual), "NaN expected for bits 0x" + Integer.toHexString(bits));
            } else {
                // compare bits so that -0.0 != 0.0
                assertEquals(Float.floatToIntBits((float) expected), Float.floatToIntBits(actual),
                        "bits 0x" + Integer.toHexString(bits));
            }
        }
    }

    @Test
    void specialF16AndBf16ValuesFromAFile() throws IOException {
        String header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,5],\"data_offsets\":[0,20]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[7],\"data_offsets\":[20,34]}}";
        byte[] f16 = RawSafetensors.shorts(0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00,
                0xFC00, 0x7E00, 0x8000, 0x3C00, 0xC000);
        byte[] bf16 = RawSafetensors.shorts(0x0001, 0x7F80, 0xFF80, 0x7FC0, 0x3F80, 0xC0A0, 0x8000);
        byte[] data = new byte[34];
        System.arraycopy(f16, 0, data, 0, 20);
        System.arraycopy(bf16, 0, data, 20, 14);
        Path file = RawSafetensors.write(dir.resolve("half.safetensors"), RawSafetensors.file(header, data));

        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            INDArray h = st.get("h");
            assertEquals(DataType.FLOAT, h.dataType());
            assertArrayEquals(new long[] {2, 5}, h.shape());
            float[] v = h.reshape(10).toFloatVector();
            assertEquals(0x1p-24f, v[0]);                   // smallest subnormal
            assertEquals(1023 * 0x1p-24f, v[1]);            // largest subnormal
            assertEquals(0x1p-14f, v[2]);                   // smallest normal
            assertEquals(65504f, v[3]);                     // largest finite
            assertEquals(Float.POSITIVE_INFINITY, v[4]);
            assertEquals(Float.NEGATIVE_INFINITY, v[5]);
            assertTrue(Float.isNaN(v[6]));
            assertEquals(Float.floatToIntBits(-0.0f), Float.floatToIntBits(v[7]));
            assertEquals(1f, v[8]);
            assertEquals(-2f, v[9]);

            float[] b = st.get("b").toFloatVector();
            assertEquals(0x1p-133f, b[0]);                  // bf16 subnormal
            assertEquals(Float.POSITIVE_INFINITY, b[1]);
            assertEquals(Float.NEGATIVE_INFINITY, b[2]);
            assertTrue(Float.isNaN(b[3]));
            assertEquals(1f, b[4]);
            assertEquals(-5f, b[5]);
            assertEquals(Float.floatToIntBits(-0.0f), Float.floatToIntBits(b[6]));

            INDArray asHalf = st.get("h", DataType.FLOAT16);
            assertEquals(DataType.FLOAT16, asHalf.dataType());
            assertEquals(65504f, asHalf.getFloat(0, 3));
        }
    }
}
