package org.dl4jmtp.io;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Reads the shared PyTorch-written fixture {@code tiny-hybrid}. Expected values were obtained independently of this
 * code with /usr/bin/python3 (struct + json: read the 8-byte length, json.loads the header, struct.unpack the
 * element at {@code 8 + n + begin + flatIndex * itemsize}) and are hard-coded here.
 */
class SafetensorsFixtureTest {

    static Path fixturesDir() {
        String property = System.getProperty("dl4jmtp.fixtures");
        List<Path> candidates = property != null
                ? List.of(Paths.get(property))
                // module dir (Surefire's working directory) or the repository root
                : List.of(Paths.get("../../shared/fixtures"), Paths.get("../shared/fixtures"));
        for (Path p : candidates) {
            if (Files.isDirectory(p.resolve("tiny-hybrid"))) {
                return p;
            }
        }
        return fail("fixture directory tiny-hybrid not found in " + candidates);
    }

    @Test
    void modelWeights() throws IOException {
        Path file = fixturesDir().resolve("tiny-hybrid/model.safetensors");
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals(95, st.size());
            assertEquals(Map.of("format", "pt"), st.metadata());
            assertShape(st, "backbone.embeddings.weight", 97, 32);
            // d_in_proj = 2·(nh·P) + 2·G·N + nh = 2·32 + 2·2·16 + 4
            assertShape(st, "backbone.layers.0.mixer.in_proj.weight", 132, 32);
            assertShape(st, "backbone.layers.0.mixer.conv1d.weight", 96, 1, 4);
            assertShape(st, "lm_head.weight", 97, 32);
            assertShape(st, "mtp.layers.0.eh_proj.weight", 32, 64);
            assertShape(st, "mtp.layers.1.mixer.experts.0.up_proj.weight", 16, 32);
            assertEquals(SafetensorsDType.F32, st.info("lm_head.weight").dtype());

            INDArray emb = st.get("backbone.embeddings.weight");
            assertEquals(DataType.FLOAT, emb.dataType());
            assertEquals(0.027847735211253166f, emb.getFloat(0, 0));
            assertEquals(-0.025287752971053123f, emb.getFloat(5, 17));
            assertEquals(0.08090584725141525f, emb.getFloat(96, 31));
            assertEquals(-0.6653720140457153f, st.get("backbone.layers.0.mixer.conv1d.weight").getFloat(5, 0, 2));
            assertEquals(-0.07404085993766785f, st.get("lm_head.weight").getFloat(3, 7));
            assertEquals(0.11797047406435013f, st.get("mtp.layers.0.eh_proj.weight").getFloat(31, 63));
            assertEquals(-0.16496741771697998f,
                    st.get("mtp.layers.1.mixer.experts.0.up_proj.weight").getFloat(15, 31));
            assertEquals(1.3862943649291992f, st.get("backbone.layers.0.mixer.A_log").getFloat(3)); // log(4)
        }
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(fixturesDir().resolve("tiny-hybrid"))) {
            assertEquals(95, ckpt.size());
            assertShape(ckpt.info("lm_head.weight"), 97, 32);
        }
    }

    @Test
    void referenceInputsAndOutputs() throws IOException {
        Path file = fixturesDir().resolve("tiny-hybrid/io.safetensors");
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals(110, st.size());
            assertEquals(SafetensorsDType.I64, st.info("input_ids").dtype());
            assertShape(st, "input_ids", 2, 20);
            assertEquals(SafetensorsDType.I64, st.info("labels").dtype());
            assertShape(st, "labels", 2, 20);
            assertEquals(SafetensorsDType.F32, st.info("logits_main").dtype());
            assertShape(st, "logits_main", 2, 20, 97);

            INDArray ids = st.get("input_ids");
            assertEquals(DataType.INT64, ids.dataType());
            assertArrayEquals(new long[] {80, 33, 58, 64, 52, 81, 59, 42, 32, 48, 67, 41, 57, 94, 24, 10, 13, 34, 34, 44,
                    36, 22, 27, 73, 68, 96, 74, 42, 79, 66, 69, 53, 55, 5, 82, 0, 0, 0, 0, 0}, ids.reshape(40).toLongVector());

            long[] labels = st.get("labels").reshape(40).toLongVector();
            assertArrayEquals(new long[] {-100, -100, -100, 52, 81, 59, 42, 32, 48, 67, 41, 57, 94, 24, 10, 13, 34, 34,
                    44, 6, 22, 27, 73, 68, 96, 74, 42, 79, 66, 69, 53, 55, 5, 82, -100, -100, -100, -100, -100, -100},
                    labels);
            // expected.json: N = 31 labels that are not -100
            assertEquals(31, java.util.Arrays.stream(labels).filter(v -> v != -100).count());

            INDArray logits = st.get("logits_main");
            assertEquals(-1.675887107849121f, logits.getFloat(0, 0, 0));
            assertEquals(-0.5102254152297974f, logits.getFloat(0, 5, 42));
            assertEquals(-0.4490329325199127f, logits.getFloat(1, 19, 96));
            assertTrue(st.keys().contains("grad.backbone.embeddings.weight"));
        }
    }

    private static void assertShape(SafetensorsFile st, String key, long... shape) {
        assertShape(st.info(key), shape);
    }

    private static void assertShape(SafetensorsTensorInfo info, long... shape) {
        assertArrayEquals(shape, info.shape(), info.name());
    }
}
