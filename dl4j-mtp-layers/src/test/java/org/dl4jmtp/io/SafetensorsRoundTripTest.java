package org.dl4jmtp.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Writer → reader round trips of every dtype and layout, and the on-disk layout of what the writer produces. */
class SafetensorsRoundTripTest {

    @TempDir
    Path dir;

    private static final float BF16_MAX = Float.intBitsToFloat(0x7F7F0000); // largest finite bfloat16

    private static Map<String, INDArray> everyDtype() {
        Map<String, INDArray> t = new LinkedHashMap<>();
        t.put("f64", Nd4j.createFromArray(new double[][] {{1.5, -2.25, 1e300}, {Double.MIN_VALUE, -0.0, Math.PI}}));
        t.put("f32_3d", Nd4j.createFromArray(new float[][][] {
                {{1f, 2f, 3f, 4f}, {5f, 6f, 7f, 8f}, {9f, 10f, 11f, 12f}},
                {{-1f, -2f, -3f, -4f}, {0.1f, 0.2f, 0.3f, 0.4f}, {Float.MAX_VALUE, Float.MIN_VALUE, 1e-20f, -7f}}}));
        t.put("f16", Nd4j.createFromArray(1.5f, -2.25f, 65504f, 0f, 0x1p-14f, -0.5f).castTo(DataType.FLOAT16));
        t.put("bf16", Nd4j.createFromArray(1.5f, -2.25f, 65536f, 0.0078125f, BF16_MAX, -3f).castTo(DataType.BFLOAT16));
        t.put("i64", Nd4j.createFromArray(new long[][] {{Long.MIN_VALUE, -100L}, {0L, Long.MAX_VALUE}}));
        t.put("i32", Nd4j.createFromArray(Integer.MIN_VALUE, -1, 0, 7, Integer.MAX_VALUE));
        t.put("i8", Nd4j.createFromArray(new byte[] {-128, -1, 0, 1, 127}));
        t.put("u8", Nd4j.createFromArray(0, 1, 200, 255).castTo(DataType.UINT8));
        t.put("bool", Nd4j.createFromArray(true, false, false, true, true));
        t.put("scalar", Nd4j.scalar(3.25f));
        t.put("empty", Nd4j.create(DataType.FLOAT, new long[] {0, 3}, 'c'));
        return t;
    }

    @Test
    void everyDtypeRoundTrips() throws IOException {
        Path file = dir.resolve("all.safetensors");
        SafetensorsWriter.write(file, everyDtype(), Map.of("format", "pt", "note", "round trip"));

        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals(List.of("bf16", "bool", "empty", "f16", "f32_3d", "f64", "i32", "i64", "i8", "scalar", "u8"),
                    new ArrayList<>(st.keys()));
            assertEquals(Map.of("format", "pt", "note", "round trip"), st.metadata());

            assertInfo(st, "f64", SafetensorsDType.F64, 2, 3);
            assertInfo(st, "f32_3d", SafetensorsDType.F32, 2, 3, 4);
            assertInfo(st, "f16", SafetensorsDType.F16, 6);
            assertInfo(st, "bf16", SafetensorsDType.BF16, 6);
            assertInfo(st, "i64", SafetensorsDType.I64, 2, 2);
            assertInfo(st, "i32", SafetensorsDType.I32, 5);
            assertInfo(st, "i8", SafetensorsDType.I8, 5);
            assertInfo(st, "u8", SafetensorsDType.U8, 4);
            assertInfo(st, "bool", SafetensorsDType.BOOL, 5);
            assertInfo(st, "scalar", SafetensorsDType.F32);
            assertInfo(st, "empty", SafetensorsDType.F32, 0, 3);

            INDArray f64 = st.get("f64");
            assertEquals(DataType.DOUBLE, f64.dataType());
            assertArrayEquals(new long[] {2, 3}, f64.shape());
            assertBits(new double[] {1.5, -2.25, 1e300, Double.MIN_VALUE, -0.0, Math.PI}, f64.reshape(6).toDoubleVector());

            INDArray f32 = st.get("f32_3d");
            assertEquals(DataType.FLOAT, f32.dataType());
            assertArrayEquals(new long[] {2, 3, 4}, f32.shape());
            assertEquals(0.3f, f32.getFloat(1, 1, 2));
            assertEquals(Float.MIN_VALUE, f32.getFloat(1, 2, 1));
            assertEquals(1e-20f, f32.getFloat(1, 2, 2));
            assertEquals(12f, f32.getFloat(0, 2, 3));
            assertArrayEquals(everyDtype().get("f32_3d").reshape(24).toFloatVector(), f32.reshape(24).toFloatVector());

            INDArray f16 = st.get("f16");
            assertEquals(DataType.FLOAT, f16.dataType());
            assertArrayEquals(new float[] {1.5f, -2.25f, 65504f, 0f, 0x1p-14f, -0.5f}, f16.toFloatVector());

            INDArray bf16 = st.get("bf16");
            assertEquals(DataType.FLOAT, bf16.dataType());
            assertArrayEquals(new float[] {1.5f, -2.25f, 65536f, 0.0078125f, BF16_MAX, -3f}, bf16.toFloatVector());

            INDArray i64 = st.get("i64");
            assertEquals(DataType.INT64, i64.dataType());
            assertArrayEquals(new long[] {Long.MIN_VALUE, -100L, 0L, Long.MAX_VALUE}, i64.reshape(4).toLongVector());

            INDArray i32 = st.get("i32");
            assertEquals(DataType.INT32, i32.dataType());
            assertArrayEquals(new int[] {Integer.MIN_VALUE, -1, 0, 7, Integer.MAX_VALUE}, i32.toIntVector());

            INDArray i8 = st.get("i8");
            assertEquals(DataType.INT8, i8.dataType());
            assertArrayEquals(new int[] {-128, -1, 0, 1, 127}, i8.castTo(DataType.INT32).toIntVector());

            INDArray u8 = st.get("u8");
            assertEquals(DataType.UINT8, u8.dataType());
            assertArrayEquals(new int[] {0, 1, 200, 255}, u8.castTo(DataType.INT32).toIntVector());

            INDArray bool = st.get("bool");
            assertEquals(DataType.BOOL, bool.dataType());
            assertArrayEquals(new int[] {1, 0, 0, 1, 1}, bool.castTo(DataType.INT32).toIntVector());

            INDArray scalar = st.get("scalar");
            assertEquals(0, scalar.rank());
            assertEquals(3.25f, scalar.getFloat(0));

            INDArray empty = st.get("empty");
            assertTrue(empty.isEmpty());
            assertArrayEquals(new long[] {0, 3}, empty.shape());

            INDArray cast = st.get("i32", DataType.DOUBLE);
            assertEquals(DataType.DOUBLE, cast.dataType());
            assertEquals(7.0, cast.getDouble(3));
        }
    }

    @Test
    void onDiskLayoutMatchesTheHuggingFaceWriter() throws IOException {
        Path file = dir.resolve("layout.safetensors");
        Map<String, INDArray> t = new LinkedHashMap<>();
        t.put("zeta", Nd4j.createFromArray(1f, 2f, 3f));                        // 12 bytes
        t.put("alpha", Nd4j.createFromArray(new byte[] {5, 6, 7}));              // 3 bytes
        t.put("mid", Nd4j.createFromArray(0x1.8p0, -2.0));                      // 16 bytes
        SafetensorsWriter.write(file, t, Map.of("format", "pt"));

        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long n = bb.getLong(0);
        assertEquals(0, n % 8, "header padded to a multiple of 8");
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"pt\"}"), header);
        String json = header.stripTrailing();
        assertTrue(header.substring(json.length()).chars().allMatch(c -> c == ' '), "padding is spaces");

        JsonNode root = new ObjectMapper().readTree(json);
        List<String> order = new ArrayList<>();
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            order.add(it.next());
        }
        assertEquals(List.of("__metadata__", "alpha", "mid", "zeta"), order);
        assertEquals("[0,3]", root.get("alpha").get("data_offsets").toString());
        assertEquals("[3,19]", root.get("mid").get("data_offsets").toString());
        assertEquals("[19,31]", root.get("zeta").get("data_offsets").toString());
        assertEquals(8 + n + 31, bytes.length, "data packed contiguously, nothing after it");

        int data = (int) (8 + n);
        assertEquals(5, bytes[data]);
        assertEquals(1.5, bb.getDouble(data + 3));
        assertEquals(3f, bb.getFloat(data + 19 + 8));
    }

    @Test
    void emptyMetadataIsOmittedAndEmptyFileWorks() throws IOException {
        Path file = dir.resolve("nothing.safetensors");
        SafetensorsWriter.write(file, Map.of(), null);
        byte[] bytes = Files.readAllBytes(file);
        assertEquals(16, bytes.length, "8-byte prefix + '{}' padded to 8");
        assertEquals("{}      ", new String(bytes, 8, 8, StandardCharsets.UTF_8));
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals(Set.of(), st.keys());
            assertEquals(Map.of(), st.metadata());
        }

        SafetensorsWriter.write(file, Map.of("w", Nd4j.scalar(1f)), Map.of());
        String header = new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
        assertTrue(!header.contains("__metadata__"), header);
    }

    @Test
    void viewsAndFortranOrderAreWrittenInLogicalCOrder() throws IOException {
        INDArray base = Nd4j.createFromArray(new float[][] {{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}});
        Map<String, INDArray> t = new LinkedHashMap<>();
        t.put("columns", base.get(NDArrayIndex.all(), NDArrayIndex.interval(1, 3)));
        t.put("transposed", base.transpose());
        t.put("fortran", base.dup('f'));
        t.put("row", base.getRow(2));
        Path file = dir.resolve("views.safetensors");
        SafetensorsWriter.write(file, t, null);

        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertArrayEquals(new float[][] {{2, 3}, {6, 7}, {10, 11}}, st.get("columns").toFloatMatrix());
            assertArrayEquals(new float[][] {{1, 5, 9}, {2, 6, 10}, {3, 7, 11}, {4, 8, 12}},
                    st.get("transposed").toFloatMatrix());
            assertArrayEquals(base.toFloatMatrix(), st.get("fortran").toFloatMatrix());
            assertArrayEquals(new float[] {9, 10, 11, 12}, st.get("row").toFloatVector());
            assertEquals('c', st.get("fortran").ordering());
        }
    }

    @Test
    void floatDTypeCastsOnlyFloatingTensors() throws IOException {
        Map<String, INDArray> t = new LinkedHashMap<>();
        t.put("d", Nd4j.createFromArray(0.1, 2.5));
        t.put("h", Nd4j.createFromArray(1.5f, -2.25f).castTo(DataType.FLOAT16));
        t.put("f", Nd4j.createFromArray(0.1f));
        t.put("ids", Nd4j.createFromArray(3L, -100L));
        t.put("flags", Nd4j.createFromArray(true));

        Path f32 = dir.resolve("f32.safetensors");
        SafetensorsWriter.write(f32, t, null, SafetensorsDType.F32);
        try (SafetensorsFile st = SafetensorsFile.open(f32)) {
            assertEquals(SafetensorsDType.F32, st.info("d").dtype());
            assertEquals(SafetensorsDType.F32, st.info("h").dtype());
            assertEquals(SafetensorsDType.F32, st.info("f").dtype());
            assertEquals(SafetensorsDType.I64, st.info("ids").dtype());
            assertEquals(SafetensorsDType.BOOL, st.info("flags").dtype());
            assertArrayEquals(new float[] {0.1f, 2.5f}, st.get("d").toFloatVector());
            assertArrayEquals(new float[] {1.5f, -2.25f}, st.get("h").toFloatVector());
            assertArrayEquals(new long[] {3L, -100L}, st.get("ids").toLongVector());
        }

        Path f64 = dir.resolve("f64.safetensors");
        SafetensorsWriter.write(f64, t, null, SafetensorsDType.F64);
        try (SafetensorsFile st = SafetensorsFile.open(f64)) {
            assertEquals(SafetensorsDType.F64, st.info("f").dtype());
            assertEquals(SafetensorsDType.F64, st.info("h").dtype());
            assertEquals((double) 0.1f, st.get("f").getDouble(0));
            assertEquals(0.1, st.get("d").getDouble(0));
        }

        Path f16 = dir.resolve("f16.safetensors");
        SafetensorsWriter.write(f16, t, null, SafetensorsDType.F16);
        try (SafetensorsFile st = SafetensorsFile.open(f16)) {
            assertEquals(SafetensorsDType.F16, st.info("d").dtype());
            assertEquals(SafetensorsDType.I64, st.info("ids").dtype());
            assertArrayEquals(new float[] {1.5f, -2.25f}, st.get("h").toFloatVector());
        }

        // only floating-point dtypes can be the float dtype
        assertThrows(IllegalArgumentException.class,
                () -> SafetensorsWriter.write(dir.resolve("x.safetensors"), t, null, SafetensorsDType.I64));
    }

    @Test
    void writerRejectsWhatSafetensorsCannotHold() {
        Path file = dir.resolve("bad.safetensors");
        IllegalArgumentException utf8 = assertThrows(IllegalArgumentException.class,
                () -> SafetensorsWriter.write(file, Map.of("text", Nd4j.create("a", "b")), null));
        assertTrue(utf8.getMessage().contains("text") && utf8.getMessage().contains("UTF8"), utf8.getMessage());
        IllegalArgumentException shorts = assertThrows(IllegalArgumentException.class,
                () -> SafetensorsWriter.write(file, Map.of("s", Nd4j.create(DataType.INT16, 2)), null));
        assertTrue(shorts.getMessage().contains("SHORT"), shorts.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> SafetensorsWriter.write(file, Map.of("__metadata__", Nd4j.scalar(1f)), null));
        assertTrue(Files.notExists(file));
    }

    @Test
    void unknownKeyNamesKeyAndFile() throws IOException {
        Path file = dir.resolve("one.safetensors");
        SafetensorsWriter.write(file, Map.of("w", Nd4j.scalar(1f)), null);
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> st.get("nope"));
            assertTrue(e.getMessage().contains("'nope'") && e.getMessage().contains(file.toString()), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> st.info("nope"));
            st.close();
            assertThrows(IllegalStateException.class, () -> st.get("w"), "reading after close");
        }
    }

    private static void assertInfo(SafetensorsFile st, String key, SafetensorsDType dtype, long... shape) {
        SafetensorsTensorInfo info = st.info(key);
        assertEquals(key, info.name());
        assertEquals(dtype, info.dtype(), key);
        assertArrayEquals(shape, info.shape(), key);
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        assertEquals(n, info.numElements(), key);
        assertEquals(n * dtype.byteSize(), info.end() - info.begin(), key);
    }

    private static void assertBits(double[] expected, double[] actual) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Double.doubleToRawLongBits(expected[i]), Double.doubleToRawLongBits(actual[i]), "index " + i);
        }
    }
}
