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
}
