package org.dl4jmtp.io;

import org.nd4j.linalg.api.buffer.DataType;

/**
 * The safetensors element types this project reads and writes, with their size on disk and the ND4J type a tensor
 * is loaded as. F16 and BF16 load as {@link DataType#FLOAT}: every half value is exactly representable in float, and
 * float is what the model computes in.
 */
public enum SafetensorsDType {
    F64(8, DataType.DOUBLE),
    F32(4, DataType.FLOAT),
    F16(2, DataType.FLOAT),
    BF16(2, DataType.FLOAT),
    I64(8, DataType.INT64),
    I32(4, DataType.INT32),
    I8(1, DataType.INT8),
    U8(1, DataType.UINT8),
    BOOL(1, DataType.BOOL);

    private final int byteSize;
    private final DataType loadedDataType;

    SafetensorsDType(int byteSize, DataType loadedDataType) {
        this.byteSize = byteSize;
        this.loadedDataType = loadedDataType;
    }

    /** Bytes per element on disk. */
    public int byteSize() {
        return byteSize;
    }

    /** The ND4J type {@link SafetensorsFile#get(String)} returns for a tensor of this dtype. */
    public DataType loadedDataType() {
        return loadedDataType;
    }

    /** True for F64, F32, F16 and BF16. */
    public boolean isFloatingPoint() {
        return this == F64 || this == F32 || this == F16 || this == BF16;
    }

    /**
     * Parses the {@code dtype} string of a safetensors header (case-sensitive, as the format defines it).
     *
     * @throws SafetensorsFormatException naming the dtype when it is not one of the supported values
     */
    public static SafetensorsDType parse(String name) throws SafetensorsFormatException {
        if (name != null) {
            for (SafetensorsDType t : values()) {
                if (t.name().equals(name)) {
                    return t;
                }
            }
        }
        throw new SafetensorsFormatException(null, "unknown or unsupported safetensors dtype '" + name
                + "' (supported: F64, F32, F16, BF16, I64, I32, I8, U8, BOOL)");
    }

    /**
     * The dtype an ND4J array of the given type is stored as.
     *
     * @throws IllegalArgumentException for ND4J types safetensors files of this project do not hold (UTF8, SHORT,
     *                                  unsigned 16/32/64-bit, COMPRESSED, UNKNOWN)
     */
    public static SafetensorsDType of(DataType dataType) {
        if (dataType == null) {
            throw new IllegalArgumentException("data type is null");
        }
        switch (dataType) {
            case DOUBLE: return F64;
            case FLOAT: return F32;
            case HALF: return F16;
            case BFLOAT16: return BF16;
            case LONG: return I64;
            case INT: return I32;
            case BYTE: return I8;
            case UBYTE: return U8;
            case BOOL: return BOOL;
            default:
                throw new IllegalArgumentException("ND4J data type " + dataType + " cannot be stored as safetensors"
                        + " (supported: DOUBLE, FLOAT, HALF, BFLOAT16, LONG, INT, BYTE, UBYTE, BOOL)");
        }
    }

    /**
     * Converts IEEE 754 binary16 bits to float, exactly (subnormals, signed zeros, infinities and NaN included).
     * JDK 17 has no {@code Float.float16ToFloat}, hence this.
     */
    public static float f16ToFloat(short bits) {
        int sign = (bits & 0x8000) << 16;
        int exponent = (bits >>> 10) & 0x1F;
        int mantissa = bits & 0x3FF;
        if (exponent == 0x1F) {
            // infinity or NaN: keep the payload bits in the top of the float mantissa
            return Float.intBitsToFloat(sign | 0x7F80_0000 | (mantissa << 13));
        }
        if (exponent == 0) {
            // zero or subnormal: mantissa · 2^-24, exact in float
            float magnitude = mantissa * 0x1p-24f;
            return sign == 0 ? magnitude : -magnitude;
        }
        // normal: rebias the exponent from 15 to 127
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    /** Converts bfloat16 bits to float: bfloat16 is the upper half of a float, so this is exact by construction. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }
    /**
     * Rounds a float to the nearest bfloat16, ties to even (as PyTorch's {@code tensor.to(torch.bfloat16)}). Overflow
     * gives infinity, infinities and signed zeros are kept, a NaN stays a (quiet) NaN with its sign and its upper
     * payload bits. Every bfloat16 value converts back to its own bits: {@code floatToBf16(bf16ToFloat(b)) == b} for
     * every non-NaN {@code b} (and for quiet NaNs).
     */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) {
            return (short) ((bits >>> 16) | 0x0040); // NaN: keep sign and top payload, force the quiet bit
        }
        int lsb = (bits >>> 16) & 1;
        return (short) ((bits + 0x7FFF + lsb) >>> 16);
    }

    /**
     * Rounds a float to the nearest IEEE 754 binary16, ties to even, with gradual underflow to f16 subnormals
     * (values below half the smallest subnormal become signed zero; exactly half rounds to zero, the even neighbour).
     * Values from 65520 up become infinity; NaN stays a quiet NaN with its sign.
     */
    public static short floatToF16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int exponent = (bits >>> 23) & 0xFF;
        int mantissa = bits & 0x7F_FFFF;
        if (exponent == 0xFF) {
            return (short) (mantissa == 0 ? sign | 0x7C00 : sign | 0x7E00 | (mantissa >>> 13));
        }
        int e = exponent - 127 + 15;
        if (e >= 0x1F) {
            return (short) (sign | 0x7C00);
        }
        if (e <= 0) {
            // f16 subnormal (or zero): units of 2^-24; the float is m · 2^(exponent - 150)
            int shift = 126 - exponent;
            if (exponent == 0 || shift > 24) {
                return (short) sign; // below half the smallest subnormal
            }
            int m = mantissa | 0x80_0000;
            int q = m >>> shift;
            int rem = m & ((1 << shift) - 1);
            int half = 1 << (shift - 1);
            if (rem > half || (rem == half && (q & 1) == 1)) {
                q++; // may carry into the smallest normal, which is the right encoding
            }
            return (short) (sign | q);
        }
        int h = (e << 10) | (mantissa >>> 13);
        int rem = mantissa & 0x1FFF;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1)) {
            h++; // may carry into the exponent, up to infinity
        }
        return (short) (sign | h);
    }

    /** The dtype a float tensor is saved as for the names {@code float32}, {@code bfloat16}, {@code float16}. */
    public static SafetensorsDType ofTorchName(String name) {
        if (name != null) {
            switch (name.toLowerCase(java.util.Locale.ROOT)) {
                case "float32": case "f32": return F32;
                case "bfloat16": case "bf16": return BF16;
                case "float16": case "f16": return F16;
                default: break;
            }
        }
        throw new IllegalArgumentException("unknown save dtype '" + name + "' (expected float32, bfloat16 or float16)");
    }
}
