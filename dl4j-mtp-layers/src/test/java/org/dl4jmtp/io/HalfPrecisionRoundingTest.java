package org.dl4jmtp.io;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * float → bfloat16 / float16, round to nearest even, on hand-picked values whose expected bit patterns are worked out
 * by hand (in the comments), not by the code under test.
 */
class HalfPrecisionRoundingTest {

    private static void bf16(int expected, float value) {
        assertEquals(String.format("0x%04X", expected),
                String.format("0x%04X", SafetensorsDType.floatToBf16(value) & 0xFFFF), "bf16 of " + value
                        + String.format(" (0x%08X)", Float.floatToRawIntBits(value)));
    }

    private static void f16(int expected, float value) {
        assertEquals(String.format("0x%04X", expected),
                String.format("0x%04X", SafetensorsDType.floatToF16(value) & 0xFFFF), "f16 of " + value
                        + String.format(" (0x%08X)", Float.floatToRawIntBits(value)));
    }

    private static float bits(int b) {
        return Float.intBitsToFloat(b);
    }

    @Test
    void bf16RoundsToNearestEven() {
        bf16(0x3F80, 1.0f);
        bf16(0xBF80, -1.0f);
        bf16(0x0000, 0.0f);
        bf16(0x8000, -0.0f);
        // 1 + 2^-8 lies exactly between 0x3F80 (1.0) and 0x3F81: tie → even 0x3F80
        bf16(0x3F80, bits(0x3F80_8000));
        // 0x3F81_8000 lies between 0x3F81 and 0x3F82: tie → even 0x3F82
        bf16(0x3F82, bits(0x3F81_8000));
        // just above / below the tie
        bf16(0x3F81, bits(0x3F80_8001));
        bf16(0x3F80, bits(0x3F80_7FFF));
        // 1/3 = 0x3EAAAAAB: lower 16 bits 0xAAAB > 0x8000 → up to 0x3EAB
        bf16(0x3EAB, 1f / 3f);
        // float subnormals: 0x0000_8000 is a tie between 0x0000 and 0x0001 → 0x0000; 0x0001_8000 → 0x0002
        bf16(0x0000, bits(0x0000_8000));
        bf16(0x0002, bits(0x0001_8000));
        bf16(0x0001, bits(0x0000_8001));
        // the largest float rounds past bf16's largest finite (0x7F7F) to infinity
        bf16(0x7F80, Float.MAX_VALUE);
        bf16(0x7F7F, bits(0x7F7F_7FFF));
        bf16(0x7F80, Float.POSITIVE_INFINITY);
        bf16(0xFF80, Float.NEGATIVE_INFINITY);
        // NaN stays NaN (quiet), sign kept
        bf16(0x7FC0, Float.NaN);
        bf16(0xFFC0, bits(0xFFC0_0000));
        // a signalling NaN whose payload is only in the low bits must not become infinity
        bf16(0x7FC0, bits(0x7F80_0001));
    }

    @Test
    void everyBf16PatternSurvivesTheRoundTrip() {
        for (int b = 0; b <= 0xFFFF; b++) {
            boolean nan = (b & 0x7F80) == 0x7F80 && (b & 0x007F) != 0;
            if (nan && (b & 0x0040) == 0) {
                continue; // signalling NaNs come back quiet
            }
            assertEquals(b, SafetensorsDType.floatToBf16(SafetensorsDType.bf16ToFloat((short) b)) & 0xFFFF,
                    String.format("0x%04X", b));
        }
    }

    @Test
    void f16RoundsToNearestEven() {
        f16(0x3C00, 1.0f);
        f16(0xC000, -2.0f);
        f16(0x0000, 0.0f);
        f16(0x8000, -0.0f);
        // 1 + 2^-11 lies exactly between 1.0 (0x3C00) and 1 + 2^-10 (0x3C01): tie → even 0x3C00
        f16(0x3C00, 1f + 0x1p-11f);
        // 1 + 3·2^-11 lies between 0x3C01 and 0x3C02: tie → even 0x3C02
        f16(0x3C02, 1f + 3 * 0x1p-11f);
        f16(0x3C01, 1f + 0x1p-11f + 0x1p-20f);
        // 65504 is the largest finite; 65520 is the tie with 65536 (infinity) → infinity; just below stays 65504
        f16(0x7BFF, 65504f);
        f16(0x7C00, 65520f);
        f16(0x7BFF, 65519.996f);
        f16(0x7C00, 1e10f);
        f16(0xFC00, Float.NEGATIVE_INFINITY);
        // subnormals, units of 2^-24: 2^-24 → 0x0001; 3·2^-25 (tie 1/2) → even 0x0002; 2^-25 (tie) → 0
        f16(0x0001, 0x1p-24f);
        f16(0x0002, 3 * 0x1p-25f);
        f16(0x0000, 0x1p-25f);
        f16(0x0001, 0x1p-25f + 0x1p-40f);
        f16(0x8001, -0x1p-24f);
        // the largest subnormal 1023·2^-24 = 0x03FF; the smallest normal 2^-14 = 0x0400, reached by rounding too
        f16(0x03FF, 1023 * 0x1p-24f);
        f16(0x0400, 0x1p-14f);
        f16(0x0400, 1023.5f * 0x1p-24f + 0x1p-40f);
        // far below the subnormals, and float subnormals
        f16(0x0000, 1e-30f);
        f16(0x8000, -Float.MIN_VALUE);
        // NaN stays NaN
        int nan = SafetensorsDType.floatToF16(Float.NaN) & 0xFFFF;
        assertTrue((nan & 0x7C00) == 0x7C00 && (nan & 0x03FF) != 0, String.format("0x%04X", nan));
        int snan = SafetensorsDType.floatToF16(bits(0x7F80_0001)) & 0xFFFF;
        assertTrue((snan & 0x7C00) == 0x7C00 && (snan & 0x03FF) != 0, String.format("0x%04X", snan));
    }

    @Test
    void everyF16PatternSurvivesTheRoundTrip() {
        for (int b = 0; b <= 0xFFFF; b++) {
            if ((b & 0x7C00) == 0x7C00 && (b & 0x03FF) != 0) {
                continue; // NaNs: checked above
            }
            assertEquals(b, SafetensorsDType.floatToF16(SafetensorsDType.f16ToFloat((short) b)) & 0xFFFF,
                    String.format("0x%04X", b));
        }
    }
}
