package org.dl4jmtp.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.dl4jmtp.examples.Dl4jMtpCliTest.fixture;
import static org.dl4jmtp.examples.Dl4jMtpCliTest.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code convert} on the shared fixture: source dtypes kept bit for bit, --save-dtype, sharding, bad values. The
 * safetensors files are built and read back byte by byte here (a raw header parse), independently of the writer.
 */
class ConvertCommandTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    /** One tensor of a raw safetensors file: dtype, shape and its data bytes. */
    record Raw(String dtype, long[] shape, byte[] data) {
    }

    /** Parses a safetensors file by hand: name → dtype, shape, raw data (no project code involved). */
    static Map<String, Raw> readRaw(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int headerLength = (int) bb.getLong(0);
        JsonNode header = JSON.readTree(new String(bytes, 8, headerLength, StandardCharsets.UTF_8));
        Map<String, Raw> out = new TreeMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            JsonNode info = e.getValue();
            long[] shape = new long[info.get("shape").size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = info.get("shape").get(i).asLong();
            }
            int begin = 8 + headerLength + info.get("data_offsets").get(0).asInt();
            int end = 8 + headerLength + info.get("data_offsets").get(1).asInt();
            out.put(e.getKey(), new Raw(info.get("dtype").asText(), shape, Arrays.copyOfRange(bytes, begin, end)));
        }
        return out;
    }

    /** Writes a safetensors file by hand (keys in map order). */
    static void writeRaw(Path file, Map<String, Raw> tensors) throws IOException {
        Map<String, Object> header = new LinkedHashMap<>();
        long offset = 0;
        for (Map.Entry<String, Raw> e : tensors.entrySet()) {
            Map<String, Object> info = new LinkedHashMap<>();
            info.put("dtype", e.getValue().dtype());
            info.put("shape", e.getValue().shape());
            info.put("data_offsets", new long[] {offset, offset + e.getValue().data().length});
            offset += e.getValue().data().length;
            header.put(e.getKey(), info);
        }
        byte[] h = JSON.writeValueAsBytes(header);
        ByteBuffer out = ByteBuffer.allocate((int) (8 + h.length + offset)).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(h.length).put(h);
        for (Raw r : tensors.values()) {
            out.put(r.data());
        }
        Files.write(file, out.array());
    }

    static float[] floats(Raw r) {
        assertEquals("F32", r.dtype());
        float[] v = new float[r.data().length / 4];
        ByteBuffer.wrap(r.data()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
        return v;
    }

    /**
     * Reference float → bfloat16 rounding, independent of the code under test: of the two bf16 neighbours (truncated
     * and one unit up in magnitude), the nearer in exact double arithmetic; a tie goes to the even one.
     */
    static float bf16Reference(float f) {
        int bits = Float.floatToRawIntBits(f);
        float down = Float.intBitsToFloat(bits & 0xFFFF_0000);
        float up = Float.intBitsToFloat((bits & 0xFFFF_0000) + 0x1_0000);
        double dDown = Math.abs((double) f - down);
        double dUp = Math.abs((double) f - up);
        if (dDown != dUp) {
            return dDown < dUp ? down : up;
        }
        return ((bits >>> 16) & 1) == 0 ? down : up;
    }

    private static List<String> names(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void untouchedBf16TensorsAreWrittenBackBitIdentically() throws IOException {
        Map<String, Raw> f32 = readRaw(fixture().resolve("model.safetensors"));
        assertEquals(95, f32.size());
        // a BF16 checkpoint: each float truncated to its top 16 bits, plus hand-picked patterns at the start of one
        // tensor (smallest subnormal, -0, largest finite, its negative, smallest normal, a negative subnormal, 1.0)
        int[] special = {0x0001, 0x8000, 0x7F7F, 0xFF7F, 0x0080, 0x807F, 0x3F80};
        Map<String, Raw> bf16 = new TreeMap<>();
        for (Map.Entry<String, Raw> e : f32.entrySet()) {
            float[] v = floats(e.getValue());
            ByteBuffer data = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < v.length; i++) {
                int pattern = Float.floatToRawIntBits(v[i]) >>> 16;
                if (e.getKey().equals("backbone.norm_f.weight") && i < special.length) {
                    pattern = special[i];
                }
                data.putShort((short) pattern);
            }
            bf16.put(e.getKey(), new Raw("BF16", e.getValue().shape(), data.array()));
        }
        assertTrue(f32.get("backbone.norm_f.weight").data().length / 4 >= special.length);
        Path in = dir.resolve("bf16");
        Files.createDirectories(in);
        Files.copy(fixture().resolve("config.json"), in.resolve("config.json"));
        writeRaw(in.resolve("model.safetensors"), bf16);

        Path out = dir.resolve("out");
        Dl4jMtpCliTest.Run r = run("convert", "--checkpoint", in.toString(), "--out", out.toString());
        assertEquals(0, r.exitCode(), r.describe());
        assertEquals(List.of("config.json", "model.safetensors"), names(out));
        Map<String, Raw> saved = readRaw(out.resolve("model.safetensors"));
        assertEquals(bf16.keySet(), saved.keySet());
        for (Map.Entry<String, Raw> e : bf16.entrySet()) {
            Raw s = saved.get(e.getKey());
            assertEquals("BF16", s.dtype(), e.getKey());
            assertArrayEquals(e.getValue().shape(), s.shape(), e.getKey());
            assertArrayEquals(e.getValue().data(), s.data(), e.getKey());
        }
    }

    @Test
    void convertingToBfloat16AndBackGivesTheRoundedOriginals() throws IOException {
        Path half = dir.resolve("bf16");
        Path back = dir.resolve("f32");
        Dl4jMtpCliTest.Run r1 = run("convert", "--checkpoint", fixture().toString(), "--out", half.toString(),
                "--save-dtype", "bfloat16");
        assertEquals(0, r1.exitCode(), r1.describe());
        Dl4jMtpCliTest.Run r2 = run("convert", "--checkpoint", half.toString(), "--out", back.toString(),
                "--save-dtype", "FLOAT32");
        assertEquals(0, r2.exitCode(), r2.describe());

        Map<String, Raw> original = readRaw(fixture().resolve("model.safetensors"));
        Map<String, Raw> bf16 = readRaw(half.resolve("model.safetensors"));
        Map<String, Raw> f32 = readRaw(back.resolve("model.safetensors"));
        assertEquals(original.keySet(), bf16.keySet());
        assertEquals(original.keySet(), f32.keySet());
        int changed = 0;
        for (Map.Entry<String, Raw> e : original.entrySet()) {
            assertEquals("BF16", bf16.get(e.getKey()).dtype(), e.getKey());
            float[] v = floats(e.getValue());
            float[] expected = new float[v.length];
            for (int i = 0; i < v.length; i++) {
                expected[i] = bf16Reference(v[i]);
                changed += expected[i] != v[i] ? 1 : 0;
            }
            assertArrayEquals(expected, floats(f32.get(e.getKey())), e.getKey());
        }
        assertTrue(changed > 1000, "the fixture's floats are not all bf16 values: " + changed + " rounded");
        assertEquals(JSON.readTree(fixture().resolve("config.json").toFile()).get("num_nextn_predict_layers"),
                JSON.readTree(back.resolve("config.json").toFile()).get("num_nextn_predict_layers"));
    }

    @Test
    void smallShardsGiveAnIndexAndReloadToTheSameTensors() throws IOException {
        Path out = dir.resolve("sharded");
        Dl4jMtpCliTest.Run r = run("convert", "--checkpoint", fixture().toString(), "--out", out.toString(),
                "--max-shard-size", "50000");
        assertEquals(0, r.exitCode(), r.describe());
        List<String> files = names(out);
        assertTrue(files.contains(SafetensorsCheckpoint.INDEX_FILE), files.toString());
        assertFalse(files.contains(SafetensorsCheckpoint.SINGLE_FILE), files.toString());
        long shards = files.stream().filter(n -> n.matches("model-\\d{5}-of-\\d{5}\\.safetensors")).count();
        assertTrue(shards >= 4, files.toString());
        assertTrue(files.contains(String.format("model-00001-of-%05d.safetensors", shards)), files.toString());

        JsonNode index = JSON.readTree(out.resolve(SafetensorsCheckpoint.INDEX_FILE).toFile());
        Map<String, Raw> original = readRaw(fixture().resolve("model.safetensors"));
        Map<String, Raw> reloaded = new TreeMap<>();
        long dataBytes = 0;
        for (String file : files) {
            if (file.startsWith("model-")) {
                Map<String, Raw> shard = readRaw(out.resolve(file));
                long bytes = shard.values().stream().mapToLong(t -> t.data().length).sum();
                assertTrue(bytes <= 50_000 || shard.size() == 1, file + " holds " + bytes + " bytes");
                dataBytes += bytes;
                for (Map.Entry<String, Raw> e : shard.entrySet()) {
                    assertEquals(file, index.get("weight_map").get(e.getKey()).asText(), e.getKey());
                    reloaded.put(e.getKey(), e.getValue());
                }
            }
        }
        assertEquals(dataBytes, index.get("metadata").get("total_size").asLong());
        assertEquals(original.size(), index.get("weight_map").size());
        assertEquals(original.keySet(), reloaded.keySet());
        for (Map.Entry<String, Raw> e : original.entrySet()) {
            assertArrayEquals(e.getValue().data(), reloaded.get(e.getKey()).data(), e.getKey());
            assertEquals("F32", reloaded.get(e.getKey()).dtype(), e.getKey());
        }
        // the project's reader and the model load it strictly
        Dl4jMtpCliTest.Run info = run("info", "--checkpoint", out.toString(), "--json");
        assertEquals(0, info.exitCode(), info.describe());

        // converted again into the same directory as one file: the stale shards and index are removed, and said so
        Dl4jMtpCliTest.Run single = run("convert", "--checkpoint", fixture().toString(), "--out", out.toString());
        assertEquals(0, single.exitCode(), single.describe());
        assertEquals(List.of("config.json", "model.safetensors"), names(out));
        assertTrue(single.err().contains("removed") && single.err().contains(SafetensorsCheckpoint.INDEX_FILE),
                single.describe());
        assertEquals(original.keySet(), readRaw(out.resolve("model.safetensors")).keySet());
    }

    @Test
    void badValuesAreOneLineErrors() throws IOException {
        String in = fixture().toString();
        String out = dir.resolve("out").toString();
        Dl4jMtpCliTest.Run dtype = run("convert", "--checkpoint", in, "--out", out, "--save-dtype", "int8");
        assertEquals(1, dtype.exitCode(), dtype.describe());
        assertEquals("dl4j-mtp convert: error: --save-dtype must be float32, bfloat16 or float16, got 'int8'",
                dtype.err().strip());

        Dl4jMtpCliTest.Run size = run("convert", "--checkpoint", in, "--out", out, "--max-shard-size", "5XB");
        assertEquals(1, size.exitCode(), size.describe());
        assertTrue(size.err().strip().startsWith("dl4j-mtp convert: error: --max-shard-size: invalid size '5XB'"),
                size.describe());
        assertEquals(1, size.err().strip().lines().count(), size.describe());

        Dl4jMtpCliTest.Run zero = run("convert", "--checkpoint", in, "--out", out, "--max-shard-size", "0");
        assertEquals(1, zero.exitCode(), zero.describe());
        assertTrue(zero.err().contains("--max-shard-size"), zero.describe());

        Dl4jMtpCliTest.Run same = run("convert", "--checkpoint", in, "--out", in);
        assertEquals(1, same.exitCode(), same.describe());
        assertTrue(same.err().contains("--out must not be the --checkpoint directory"), same.describe());

        Dl4jMtpCliTest.Run missing = run("convert", "--checkpoint", dir.resolve("nope").toString(), "--out", out);
        assertEquals(1, missing.exitCode(), missing.describe());
        assertTrue(missing.err().contains("checkpoint directory not found"), missing.describe());
        assertFalse(Files.exists(dir.resolve("out")), "nothing written on errors");

        Dl4jMtpCliTest.Run train = run("train", "--save-dtype", "half", "--out", dir.resolve("run").toString());
        assertEquals(1, train.exitCode(), train.describe());
        assertEquals("dl4j-mtp train: error: --save-dtype must be float32, bfloat16 or float16, got 'half'",
                train.err().strip());
    }
}
