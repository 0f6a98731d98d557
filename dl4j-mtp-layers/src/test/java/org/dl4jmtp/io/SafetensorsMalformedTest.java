package org.dl4jmtp.io;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.stream.Stream;

import static org.dl4jmtp.io.RawSafetensors.file;
import static org.dl4jmtp.io.RawSafetensors.withDeclaredLength;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.params.provider.Arguments.arguments;

/** Deliberately broken files: each must be rejected by {@code open} with a message naming the file and the problem. */
class SafetensorsMalformedTest {

    @TempDir
    Path dir;

    private static String entry(String name, String dtype, String shape, String offsets) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
    }

    static Stream<Arguments> malformedFiles() {
        String ok = entry("a", "F32", "[2]", "[0,8]");
        return Stream.of(
                arguments("truncated", new byte[] {1, 0, 0, 0, 0}, "shorter than the 8-byte header length prefix"),
                arguments("empty file", new byte[0], "file is 0 bytes"),
                arguments("header longer than file", withDeclaredLength(1000, new byte[20]),
                        "header length 1000 bytes exceeds the file (28 bytes"),
                arguments("absurd header length 2^62", withDeclaredLength(1L << 62, "{}".getBytes(StandardCharsets.UTF_8)),
                        "header length 4611686018427387904 bytes is absurd"),
                arguments("header length >= 2^63", withDeclaredLength(-1L, new byte[8]),
                        "header length 18446744073709551615 bytes is absurd"),
                arguments("non-JSON header", file("{\"a\": nope}", 0), "header is not valid JSON"),
                arguments("trailing garbage after the object", file("{} {}", 0), "header is not valid JSON"),
                arguments("invalid UTF-8", withDeclaredLength(4, new byte[] {'{', (byte) 0xC3, 0x28, '}'}),
                        "header is not valid UTF-8"),
                arguments("JSON array header", file("[1,2,3]", 0), "header is not a JSON object but a JSON array"),
                arguments("empty header", file("", 0), "header is not a JSON object but empty"),
                arguments("entry not an object", file("{\"a\":5}", 0), "tensor 'a': entry is not a JSON object"),
                arguments("missing dtype", file("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                        "tensor 'a': missing 'dtype'"),
                arguments("dtype not a string", file("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                        "tensor 'a': 'dtype' is not a string"),
                arguments("unknown dtype", file("{" + entry("a", "Q4", "[2]", "[0,8]") + "}", 8),
                        "tensor 'a': unknown or unsupported safetensors dtype 'Q4'"),
                arguments("missing shape", file("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4),
                        "tensor 'a': missing 'shape'"),
                arguments("shape not an array", file("{" + entry("a", "F32", "\"2\"", "[0,8]") + "}", 8),
                        "tensor 'a': 'shape' is not an array"),
                arguments("fractional dim", file("{" + entry("a", "F32", "[2.5]", "[0,8]") + "}", 8),
                        "'shape' element 2.5 is not an integer"),
                arguments("negative dim", file("{" + entry("a", "F32", "[-1,2]", "[0,8]") + "}", 8),
                        "tensor 'a': negative dimension in shape [-1, 2]"),
                arguments("shape product overflow",
                        file("{" + entry("a", "F32", "[4294967296,4294967296]", "[0,8]") + "}", 8),
                        "tensor 'a': shape [4294967296, 4294967296] overflows"),
                arguments("missing data_offsets", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4),
                        "tensor 'a': missing 'data_offsets'"),
                arguments("three data_offsets", file("{" + entry("a", "F32", "[2]", "[0,8,9]") + "}", 9),
                        "'data_offsets' has 3 elements, expected 2"),
                arguments("shape/dtype vs byte range", file("{" + entry("a", "F32", "[2,3]", "[0,20]") + "}", 24),
                        "tensor 'a': shape [2, 3] of dtype F32 needs 24 bytes but data_offsets [0, 20] span 20"),
                arguments("offsets beyond data section", file("{" + entry("a", "F32", "[2]", "[0,8]") + "}", 4),
                        "tensor 'a': data_offsets [0, 8] extend beyond the data section (4 bytes)"),
                arguments("negative offset", file("{" + entry("a", "F32", "[1]", "[-4,0]") + "}", 4),
                        "tensor 'a': negative data_offsets [-4, 0]"),
                arguments("begin > end", file("{" + entry("a", "F32", "[2]", "[8,0]") + "}", 8),
                        "tensor 'a': data_offsets begin > end [8, 0]"),
                arguments("overlapping ranges",
                        file("{" + ok + "," + entry("b", "F32", "[2]", "[4,12]") + "}", 12),
                        "byte ranges of tensors 'a' [0, 8) and 'b' [4, 12) overlap"),
                arguments("duplicate tensor names",
                        file("{" + ok + "," + entry("a", "F32", "[1]", "[8,12]") + "}", 12),
                        "header has a duplicate key: Duplicate field 'a'"),
                arguments("duplicate field inside an entry",
                        file("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                        "Duplicate field 'dtype'"),
                arguments("non-string metadata value",
                        file("{\"__metadata__\":{\"format\":\"pt\",\"epoch\":3}," + ok + "}", 8),
                        "__metadata__ value of 'epoch' is not a string"),
                arguments("metadata not an object", file("{\"__metadata__\":[]," + ok + "}", 8),
                        "__metadata__ is not a JSON object"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("malformedFiles")
    void rejectedWithAClearMessage(String caseName, byte[] bytes, String expectedProblem) throws IOException {
        Path file = RawSafetensors.write(dir.resolve("bad.safetensors"), bytes);
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> SafetensorsFile.open(file));
        assertTrue(e.getMessage().startsWith(file + ": "), "names the file: " + e.getMessage());
        assertTrue(e.getMessage().contains(expectedProblem),
                "expected '" + expectedProblem + "' in: " + e.getMessage());
        // the checkpoint entry point reports the same problem
        SafetensorsFormatException viaCheckpoint = assertThrows(SafetensorsFormatException.class,
                () -> SafetensorsCheckpoint.open(file));
        assertTrue(viaCheckpoint.getMessage().contains(expectedProblem), viaCheckpoint.getMessage());
    }
}
