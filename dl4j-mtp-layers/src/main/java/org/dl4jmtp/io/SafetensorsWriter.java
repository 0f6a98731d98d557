package org.dl4jmtp.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.concurrency.AffinityManager;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * Writes {@code .safetensors} files the way the Hugging Face writer does: keys sorted, {@code __metadata__} first,
 * header padded with spaces to a multiple of 8 bytes, data packed contiguously in key order, little-endian, C order.
 *
 * <p>Writes are atomic: the file is written to a temporary file in the target directory, flushed to disk, then
 * renamed over the target. A failed write leaves any previous file untouched and removes the temporary file.
 */
public final class SafetensorsWriter {

    private static final ObjectMapper JSON = new ObjectMapper();

    private SafetensorsWriter() {
    }

    /**
     * Writes every tensor in its own dtype (DOUBLE→F64, FLOAT→F32, HALF→F16, BFLOAT16→BF16, LONG→I64, INT→I32,
     * BYTE→I8, UBYTE→U8, BOOL→BOOL). Views and F-order arrays are written in logical C order.
     *
     * @param metadata written as {@code __metadata__}; omitted when null or empty
     * @throws IllegalArgumentException for an unsupported data type, a null name/array/metadata entry, the reserved
     *                                  name {@code __metadata__}, or a tensor over 2 GiB; nothing is written then
     */
    public static void write(Path file, Map<String, INDArray> tensors, Map<String, String> metadata)
            throws IOException {
        write(file, tensors, metadata, (SafetensorsDType) null);
    }

    /**
     * Like {@link #write(Path, Map, Map)}, but every floating-point tensor (DOUBLE, FLOAT, HALF, BFLOAT16) is written
     * as {@code floatDType}; integer and boolean tensors keep their dtype. F16 and BF16 are rounded from float to
     * nearest, ties to even ({@link SafetensorsDType#floatToBf16}, {@link SafetensorsDType#floatToF16}).
     *
     * @param floatDType F32, F64, F16 or BF16; {@code null} keeps each tensor's own dtype
     */
    public static void write(Path file, Map<String, INDArray> tensors, Map<String, String> metadata,
                             SafetensorsDType floatDType) throws IOException {
        checkFloatDType(floatDType);
        write(file, tensors, metadata, name -> floatDType);
    }

    /**
     * Like {@link #write(Path, Map, Map, SafetensorsDType)}, with the floating-point dtype chosen per tensor name:
     * {@code floatDTypes.apply(name)} (null keeps the tensor's own dtype).
     */
    public static void write(Path file, Map<String, INDArray> tensors, Map<String, String> metadata,
                             Function<String, SafetensorsDType> floatDTypes) throws IOException {
        // validate everything and lay out the header before the temp file exists
        List<Entry> entries = plan(tensors, floatDTypes);
        byte[] header = headerBytes(entries, metadata);
        writeAtomically(file.toAbsolutePath(), header, entries);
    }

    /** Bytes the data of {@code array} takes when written as {@code dtype} (the header excluded). */
    static long dataBytes(INDArray array, SafetensorsDType dtype) {
        return Math.multiplyExact(array.length(), dtype.byteSize());
    }

    static void checkFloatDType(SafetensorsDType floatDType) {
        if (floatDType != null && !floatDType.isFloatingPoint()) {
            throw new IllegalArgumentException("floatDType must be F32, F64, F16 or BF16, got " + floatDType);
        }
    }

    /** One tensor to write: its source array, the dtype it is written as and its byte range. */
    private record Entry(String name, INDArray array, SafetensorsDType dtype, long[] shape, long begin, long end) {
    }

    private static List<Entry> plan(Map<String, INDArray> tensors, Function<String, SafetensorsDType> floatDTypes) {
        if (tensors == null) {
            throw new IllegalArgumentException("tensors map is null");
        }
        List<Entry> entries = new ArrayList<>();
        long offset = 0;
        for (Map.Entry<String, INDArray> e : new TreeMap<>(tensors).entrySet()) {
            String name = e.getKey();
            INDArray array = e.getValue();
            if (SafetensorsFile.METADATA_KEY.equals(name)) {
                throw new IllegalArgumentException("'" + SafetensorsFile.METADATA_KEY + "' is reserved for metadata");
            }
            if (array == null) {
                throw new IllegalArgumentException("tensor '" + name + "' is null");
            }
            SafetensorsDType floatDType = floatDTypes == null ? null : floatDTypes.apply(name);
            checkFloatDType(floatDType);
            SafetensorsDType dtype = dtypeFor(name, array.dataType(), floatDType);
            long bytes = dataBytes(array, dtype);
            if (bytes > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("tensor '" + name + "' is " + bytes
                        + " bytes; tensors over 2 GiB are not supported");
            }
            entries.add(new Entry(name, array, dtype, array.shape(), offset, offset + bytes));
            offset += bytes;
        }
        return entries;
    }

    private static SafetensorsDType dtypeFor(String name, DataType type, SafetensorsDType floatDType) {
        if (floatDType != null && type.isFPType()) {
            return floatDType;
        }
        try {
            return SafetensorsDType.of(type);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("tensor '" + name + "': " + e.getMessage(), e);
        }
    }

    /** JSON header padded with spaces so that the data section starts 8-byte aligned. */
    private static byte[] headerBytes(List<Entry> entries, Map<String, String> metadata) throws IOException {
        Map<String, Object> header = new LinkedHashMap<>();
        if (metadata != null && !metadata.isEmpty()) {
            Map<String, String> sorted = new TreeMap<>();
            metadata.forEach((k, v) -> {
                if (k == null || v == null) {
                    throw new IllegalArgumentException("metadata keys and values must not be null: " + k + "=" + v);
                }
                sorted.put(k, v);
            });
            header.put(SafetensorsFile.METADATA_KEY, sorted);
        }
        for (Entry e : entries) {
            Map<String, Object> info = new LinkedHashMap<>();
            info.put("dtype", e.dtype().name());
            info.put("shape", e.shape());
            info.put("data_offsets", new long[] {e.begin(), e.end()});
            header.put(e.name(), info);
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    private static void writeAtomically(Path target, byte[] header, List<Entry> entries) throws IOException {
        AtomicFiles.write(target, temp -> {
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
                writeFully(channel, prefix);
                writeFully(channel, ByteBuffer.wrap(header));
                for (Entry e : entries) {
                    writeTensor(channel, e);
                }
            }
        });
    }

    private static void writeTensor(FileChannel channel, Entry e) throws IOException {
        long bytes = e.end() - e.begin();
        if (bytes == 0) {
            return;
        }
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            INDArray data = e.array();
            if ((e.dtype() == SafetensorsDType.BF16 || e.dtype() == SafetensorsDType.F16)
                    && data.dataType() != e.dtype().loadedDataType() /* FLOAT */ ) {
                data = data.castTo(DataType.FLOAT);
            }
            if (e.dtype() == SafetensorsDType.BF16 || e.dtype() == SafetensorsDType.F16) {
                writeHalf(channel, data.dataType() == DataType.FLOAT && isDenseC(data) ? data : data.dup('c'), e);
                return;
            }
            if (SafetensorsDType.of(data.dataType()) != e.dtype()) {
                data = data.castTo(e.dtype().loadedDataType()); // floatDType was given
            }
            if (!isDenseC(data)) {
                data = data.dup('c');
            }
            // on CUDA the newest values may be on the device
            Nd4j.getAffinityManager().ensureLocation(data, AffinityManager.Location.HOST);
            ByteBuffer raw = data.data().asNio().order(ByteOrder.nativeOrder());
            raw.clear().limit((int) bytes);
            writeFully(channel, littleEndian(raw, e.dtype().byteSize()));
        }
    }

    /**
     * Rounds a FLOAT array (dense, C order) to F16/BF16 ourselves, to nearest even: ND4J's own cast is not specified
     * to round that way. Written in chunks so that a large tensor needs no second full-size buffer.
     */
    private static void writeHalf(FileChannel channel, INDArray floats, Entry e) throws IOException {
        Nd4j.getAffinityManager().ensureLocation(floats, AffinityManager.Location.HOST);
        java.nio.FloatBuffer src = floats.data().asNio().order(ByteOrder.nativeOrder()).asFloatBuffer();
        long n = floats.length();
        boolean bf16 = e.dtype() == SafetensorsDType.BF16;
        ByteBuffer chunk = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < n; i++) {
            float f = src.get((int) i);
            chunk.putShort(bf16 ? SafetensorsDType.floatToBf16(f) : SafetensorsDType.floatToF16(f));
            if (!chunk.hasRemaining()) {
                chunk.flip();
                writeFully(channel, chunk);
                chunk.clear();
            }
        }
        chunk.flip();
        writeFully(channel, chunk);
    }

    /** True when the array's buffer holds exactly its elements in C order, so it can be written as is. */
    private static boolean isDenseC(INDArray a) {
        return !a.isView() && a.ordering() == 'c' && a.offset() == 0 && a.data().length() == a.length();
    }

    /** ND4J memory is native-order; the file is little-endian. Typed views swap when needed. */
    private static ByteBuffer littleEndian(ByteBuffer nativeOrder, int elementSize) {
        if (elementSize == 1 || ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN) {
            return nativeOrder;
        }
        ByteBuffer le = ByteBuffer.allocate(nativeOrder.remaining()).order(ByteOrder.LITTLE_ENDIAN);
        switch (elementSize) {
            case 2 -> le.asShortBuffer().put(nativeOrder.asShortBuffer());
            case 4 -> le.asIntBuffer().put(nativeOrder.asIntBuffer());
            case 8 -> le.asLongBuffer().put(nativeOrder.asLongBuffer());
            default -> throw new IllegalStateException("element size " + elementSize);
        }
        return le;
    }

    private static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }
}
