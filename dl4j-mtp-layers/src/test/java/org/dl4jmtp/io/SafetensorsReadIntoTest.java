package org.dl4jmtp.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link SafetensorsFile#readInto}: a tensor (or an element range of it) streamed into a destination of any layout and
 * floating type, in blocks smaller than the tensor, with the values the written arrays have (cast as {@code castTo}
 * casts them).
 */
class SafetensorsReadIntoTest {

    @TempDir
    Path dir;

    /** Block size of 16 bytes: 4 float elements, so every tensor below spans several blocks. */
    private static final int SMALL_BLOCKS = 16;

    private static INDArray f32() {
        return Nd4j.arange(0, 24).castTo(DataType.FLOAT).muli(0.37).subi(2.5).reshape('c', 4, 6);
    }

    private static INDArray f64() {
        return Nd4j.createFromArray(new double[][] {{1.0 / 3, -2.0 / 7, 1e-40}, {Math.PI, -Math.E, 1e39}});
    }

    private static INDArray bf16() {
        return Nd4j.createFromArray(new float[][] {{1.5f, -2.25f, 65536f}, {0.0078125f, -3f, 0.5f}})
                .castTo(DataType.BFLOAT16);
    }

    private static INDArray fused() {
        return Nd4j.arange(1, 25).castTo(DataType.FLOAT).reshape('c', 3, 2, 4);
    }

    private SafetensorsFile file() throws IOException {
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        tensors.put("f32", f32());
        tensors.put("f64", f64());
        tensors.put("bf16", bf16());
        tensors.put("fused", fused());
        tensors.put("scalar", Nd4j.scalar(3.25f));
        tensors.put("empty", Nd4j.create(DataType.FLOAT, new long[] {0, 3}, 'c'));
        Path path = dir.resolve("t.safetensors");
        SafetensorsWriter.write(path, tensors, Map.of());
        return SafetensorsFile.open(path);
    }

    @Test
    void cOrderDestinationInSeveralBlocks() throws IOException {
        try (SafetensorsFile st = file()) {
            INDArray dest = Nd4j.create(DataType.FLOAT, new long[] {4, 6}, 'c');
            st.readInto("f32", 0, dest, SMALL_BLOCKS);
            assertEquals(f32(), dest);
            INDArray vector = Nd4j.create(DataType.FLOAT, new long[] {24}, 'f');   // DL4J's 1-D parameter views
            st.readInto("f32", 0, vector, SMALL_BLOCKS);
            assertEquals(f32().reshape('c', new long[] {24}), vector);
            INDArray wide = Nd4j.create(DataType.DOUBLE, new long[] {4, 6}, 'c');
            st.readInto("f32", 0, wide);
            assertEquals(f32().castTo(DataType.DOUBLE), wide);
        }
    }

    @Test
    void fortranOrderAndStridedViewDestinations() throws IOException {
        try (SafetensorsFile st = file()) {
            INDArray fortran = Nd4j.create(DataType.FLOAT, new long[] {4, 6}, 'f');
            st.readInto("f32", 0, fortran, SMALL_BLOCKS);
            assertEquals(f32(), fortran);

            INDArray outer = Nd4j.zeros(DataType.FLOAT, 4, 10);
            INDArray columns = outer.get(NDArrayIndex.all(), NDArrayIndex.interval(2, 8));
            st.readInto("f32", 0, columns, SMALL_BLOCKS);
            assertEquals(f32(), outer.get(NDArrayIndex.all(), NDArrayIndex.interval(2, 8)));
            assertEquals(0.0, outer.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 2)).amaxNumber().doubleValue());
            assertEquals(0.0, outer.get(NDArrayIndex.all(), NDArrayIndex.interval(8, 10)).amaxNumber().doubleValue());

            INDArray flatParams = Nd4j.zeros(DataType.FLOAT, 1, 30);                // a graph's flat parameter row
            INDArray view = flatParams.get(NDArrayIndex.point(0), NDArrayIndex.interval(3, 27)).reshape('c', 4, 6);
            st.readInto("f32", 0, view, SMALL_BLOCKS);
            assertEquals(f32(), flatParams.get(NDArrayIndex.point(0), NDArrayIndex.interval(3, 27)).reshape(4, 6));
            assertEquals(0.0, flatParams.get(NDArrayIndex.point(0), NDArrayIndex.interval(0, 3)).amaxNumber()
                    .doubleValue());
        }
    }

    @Test
    void castsAsCastToDoes() throws IOException {
        try (SafetensorsFile st = file()) {
            INDArray narrowed = Nd4j.create(DataType.FLOAT, 2, 3);
            st.readInto("f64", 0, narrowed, SMALL_BLOCKS);
            assertEquals(f64().castTo(DataType.FLOAT), narrowed);
            INDArray widened = Nd4j.create(DataType.FLOAT, 2, 3);
            st.readInto("bf16", 0, widened, SMALL_BLOCKS);
            assertEquals(Nd4j.createFromArray(new float[][] {{1.5f, -2.25f, 65536f}, {0.0078125f, -3f, 0.5f}}),
                    widened);
            INDArray doubled = Nd4j.create(DataType.DOUBLE, 2, 3);
            st.readInto("bf16", 0, doubled);
            assertEquals(Nd4j.createFromArray(new double[][] {{1.5, -2.25, 65536}, {0.0078125, -3, 0.5}}), doubled);
        }
    }

    @Test
    void elementRangeOfAFusedTensor() throws IOException {
        try (SafetensorsFile st = file()) {
            for (int expert = 0; expert < 3; expert++) {
                INDArray dest = Nd4j.create(DataType.FLOAT, 2, 4);
                st.readInto("fused", expert * 8L, dest, SMALL_BLOCKS);
                assertEquals(fused().slice(expert), dest, "expert " + expert);
            }
        }
    }

    @Test
    void scalarEmptyAndBadRanges() throws IOException {
        try (SafetensorsFile st = file()) {
            INDArray scalar = Nd4j.scalar(0f);
            st.readInto("scalar", 0, scalar);
            assertEquals(3.25f, scalar.getFloat(0));
            st.readInto("empty", 0, Nd4j.create(DataType.FLOAT, new long[] {0, 3}, 'c'));

            String tooLong = assertThrows(IllegalArgumentException.class,
                    () -> st.readInto("fused", 20, Nd4j.create(DataType.FLOAT, 2, 4))).getMessage();
            assertTrue(tooLong.contains("'fused'") && tooLong.contains("out of range") && tooLong.contains("24"),
                    tooLong);
            String unknown = assertThrows(IllegalArgumentException.class,
                    () -> st.readInto("nope", 0, Nd4j.create(DataType.FLOAT, 1))).getMessage();
            assertTrue(unknown.contains("nope"), unknown);
        }
    }
}
