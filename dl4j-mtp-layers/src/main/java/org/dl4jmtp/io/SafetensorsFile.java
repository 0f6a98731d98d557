package org.dl4jmtp.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.concurrency.AffinityManager;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.io.EOFException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * A read-only view of one {@code .safetensors} file.
 *
 * <p>{@link #open(Path)} reads and strictly validates the JSON header only; tensor data stays on disk and is
 * memory-mapped (read-only) tensor by tensor when {@link #get(String)} copies it into a new {@link INDArray}. So a
 * multi-GB shard costs no heap, and files larger than the 2 GiB limit of a single mapping work as long as each
 * tensor is below it.
 *
 * <p>Every structural problem is reported by {@code open} as a {@link SafetensorsFormatException} naming the file,
 * before any tensor data is touched and before anything sized by the file is allocated (beyond the header itself,
 * capped at {@link #MAX_HEADER_BYTES}).
 *
 * <p>Thread-safe for concurrent {@code get} calls. Close it to release the file handle; arrays already returned stay
 * valid.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** Larger headers are rejected: real checkpoints have headers of a few hundred KB. */
    public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    /** Key of the optional string→string metadata object in the header. */
    public static final String METADATA_KEY = "__metadata__";

    /** Rejects duplicate keys (Jackson keeps the last one by default) and anything after the top-level value. */
    static final ObjectMapper STRICT_JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private final Path path;
    private final FileChannel channel;
    /** Reused by {@link #readInto}: one block of file bytes (grown as needed). */
    private ByteBuffer readBuffer;
    private final long dataStart;
    private final Map<String, SafetensorsTensorInfo> tensors;
    private final Map<String, String> metadata;
    private volatile boolean closed;

    private SafetensorsFile(Path path, FileChannel channel, long dataStart,
                            Map<String, SafetensorsTensorInfo> tensors, Map<String, String> metadata) {
        this.path = path;
        this.channel = channel;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * Opens and validates a safetensors file.
     *
     * @throws SafetensorsFormatException when the file is not a valid safetensors file (the message names the file
     *                                    and the problem)
     * @throws IOException                when the file cannot be read
     */
    public static SafetensorsFile open(Path path) throws IOException {
        FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
        try {
            long fileSize = channel.size();
            if (fileSize < 8) {
                throw new SafetensorsFormatException(path, "file is " + fileSize
                        + " bytes, shorter than the 8-byte header length prefix");
            }
            long headerLength = readFully(channel, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            // unsigned on disk: a negative long is a length >= 2^63
            if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
                throw new SafetensorsFormatException(path, "header length " + Long.toUnsignedString(headerLength)
                        + " bytes is absurd (limit " + MAX_HEADER_BYTES + " bytes)");
            }
            if (headerLength > fileSize - 8) {
                throw new SafetensorsFormatException(path, "header length " + headerLength
                        + " bytes exceeds the file (" + fileSize + " bytes, header would end at byte "
                        + (8 + headerLength) + ")");
            }
            ByteBuffer header = readFully(channel, 8, (int) headerLength);
            long dataSize = fileSize - 8 - headerLength;
            HeaderParser parsed = new HeaderParser(path, dataSize);
            parsed.parse(header);
            return new SafetensorsFile(path, channel, 8 + headerLength,
                    Collections.unmodifiableMap(parsed.tensors), Collections.unmodifiableMap(parsed.metadata));
        } catch (IOException | RuntimeException | Error e) {
            channel.close();
            throw e;
        }
    }

    /** The file this was opened from. */
    public Path path() {
        return path;
    }

    /** Tensor names, sorted. */
    public Set<String> keys() {
        return tensors.keySet();
    }

    /** Number of tensors. */
    public int size() {
        return tensors.size();
    }

    /** Whether the file holds a tensor of this name. */
    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /**
     * Header entry of a tensor.
     *
     * @throws IllegalArgumentException naming the key and the file when there is no such tensor
     */
    public SafetensorsTensorInfo info(String name) {
        SafetensorsTensorInfo info = tensors.get(name);
        if (info == null) {
            throw new IllegalArgumentException("no tensor '" + name + "' in " + path + " (" + tensors.size()
                    + " tensors)");
        }
        return info;
    }

    /** The {@code __metadata__} of the header (empty when absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * Copies a tensor into a new C-order array of {@link SafetensorsDType#loadedDataType()}, outside any workspace.
     * F16 and BF16 are widened to FLOAT exactly.
     *
     * @throws IllegalArgumentException      naming the key and the file when there is no such tensor
     * @throws UnsupportedOperationException when the tensor is larger than 2 GiB (the limit of one NIO buffer)
     * @throws UncheckedIOException          when the data cannot be mapped
     */
    public INDArray get(String name) {
        SafetensorsTensorInfo info = info(name);
        if (closed) {
            throw new IllegalStateException("cannot read '" + name + "': " + path + " is closed");
        }
        SafetensorsDType dtype = info.dtype();
        long n = info.numElements();
        long outBytes = n * dtype.loadedDataType().width();
        if (outBytes > Integer.MAX_VALUE) {
            throw new UnsupportedOperationException("tensor '" + name + "' in " + path + " needs " + outBytes
                    + " bytes; tensors over 2 GiB are not supported");
        }
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            INDArray out = Nd4j.create(dtype.loadedDataType(), info.shape(), 'c');
            if (n == 0) {
                return out;
            }
            ByteBuffer src = channel.map(FileChannel.MapMode.READ_ONLY, dataStart + info.begin(), info.byteLength())
                    .order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer dst = out.data().asNio();
            if (dst.capacity() < outBytes) {
                throw new IllegalStateException("ND4J buffer of '" + name + "' has " + dst.capacity()
                        + " bytes, expected " + outBytes);
            }
            dst.order(ByteOrder.nativeOrder()).clear().limit((int) outBytes);
            copyElements(dtype, src, dst);
            // written through the host pointer: tell the backend (a no-op on CPU, needed on CUDA)
            Nd4j.getAffinityManager().tagLocation(out, AffinityManager.Location.HOST);
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot map tensor '" + name + "' of " + path, e);
        }
    }

    /**
     * Reads {@code dest.length()} elements of tensor {@code name}, from element {@code firstElement} on (row-major),
     * into {@code dest} (any shape of that length, filled in C order), with the values {@code get(name)} cast to
     * {@code dest}'s type would have. Streams through a buffer of at most {@link #READ_CHUNK_BYTES}: neither the file nor
     * the tensor is ever held whole, so a checkpoint loads straight into the graph's parameter views. Only a
     * destination that is not C-contiguous (DL4J's 'f'-ordered embedding matrix) goes through one C-order copy.
     *
     * @throws IllegalArgumentException naming the key and the file when there is no such tensor or the range does not
     *                                  fit in it
     * @throws UncheckedIOException     when the data cannot be read
     */
    public void readInto(String name, long firstElement, INDArray dest) {
        readInto(name, firstElement, dest, READ_CHUNK_BYTES);
    }

    /** {@link #readInto(String, long, INDArray)} through blocks of about {@code chunkBytes} (tests: small blocks). */
    synchronized void readInto(String name, long firstElement, INDArray dest, int chunkBytes) {
        SafetensorsTensorInfo info = info(name);
        if (closed) {
            throw new IllegalStateException("cannot read '" + name + "': " + path + " is closed");
        }
        long count = dest.length();
        if (firstElement < 0 || firstElement + count > info.numElements()) {
            throw new IllegalArgumentException("elements " + firstElement + " to " + (firstElement + count) + " of '"
                    + name + "' in " + path + " are out of range (it has " + info.numElements() + ")");
        }
        if (count == 0) {
            return;
        }
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            if (!isCContiguous(dest)) {
                // e.g. DL4J's 'f'-ordered embedding matrix; ND4J's interval views of strided arrays are unreliable
                try (INDArray staged = Nd4j.createUninitializedDetached(dest.dataType(), dest.shape())) {
                    readInto(name, firstElement, staged, chunkBytes);
                    dest.assign(staged);
                }
                return;
            }
            copyInBlocks(info, firstElement, dest.rank() == 1 ? dest : dest.reshape('c', new long[] {count}),
                    chunkBytes);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read tensor '" + name + "' of " + path, e);
        }
    }

    /**
     * File bytes → staging array (the loaded type) → {@code flat}, one block at a time. The staging memory and any cast
     * are released at once, not by the garbage collector: over many small tensors they would add up to another copy of
     * the weights before a collection.
     */
    private void copyInBlocks(SafetensorsTensorInfo info, long firstElement, INDArray flat, int chunkBytes)
            throws IOException {
        SafetensorsDType dtype = info.dtype();
        DataType loaded = dtype.loadedDataType();
        int fileWidth = dtype.byteSize();
        long count = flat.length();
        long chunk = Math.max(1, chunkBytes / Math.max(fileWidth, loaded.width()));
        try (INDArray stage = Nd4j.createUninitializedDetached(loaded, Math.min(chunk, count))) {
            ByteBuffer fileBytes = readBuffer((int) (stage.length() * fileWidth));
            for (long done = 0; done < count; done += chunk) {
                long n = Math.min(chunk, count - done);
                fileBytes.clear().limit((int) (n * fileWidth));
                readFully(channel, dataStart + info.begin() + (firstElement + done) * fileWidth, fileBytes);
                fileBytes.flip();
                ByteBuffer stageBytes = stage.data().asNio().order(ByteOrder.nativeOrder());
                stageBytes.clear().limit((int) (n * loaded.width()));
                copyElements(dtype, fileBytes, stageBytes);
                Nd4j.getAffinityManager().tagLocation(stage, AffinityManager.Location.HOST);
                INDArray part = n == stage.length() ? stage : stage.get(NDArrayIndex.interval(0, n));
                INDArray into = n == count ? flat : flat.get(NDArrayIndex.interval(done, done + n));
                if (part.dataType() == flat.dataType()) {
                    into.assign(part);
                } else {
                    try (INDArray cast = part.castTo(flat.dataType())) {
                        into.assign(cast);
                    }
                }
            }
        }
    }

    /** The file's reusable read buffer, at least {@code bytes} large (grown as needed, up to one block). */
    private ByteBuffer readBuffer(int bytes) {
        if (readBuffer == null || readBuffer.capacity() < bytes) {
            readBuffer = ByteBuffer.allocateDirect(bytes).order(ByteOrder.LITTLE_ENDIAN);
        }
        return readBuffer;
    }

    /** Elements laid out in C order without gaps (dimensions of size 1 may have any stride). */
    private static boolean isCContiguous(INDArray a) {
        long expected = 1;
        for (int d = a.rank() - 1; d >= 0; d--) {
            if (a.size(d) != 1 && a.stride(d) != expected) {
                return false;
            }
            expected *= a.size(d);
        }
        return true;
    }

    /** Largest buffer {@link #readInto} reads through. */
    public static final int READ_CHUNK_BYTES = 8 << 20;

    /** {@link #get(String)} cast to {@code target} (no copy beyond the load when the types already match). */
    public INDArray get(String name, DataType target) {
        INDArray loaded = get(name);
        return loaded.dataType() == target ? loaded : loaded.castTo(target);
    }

    /** Releases the file handle. Arrays returned by {@code get} stay valid. */
    @Override
    public void close() {
        closed = true;
        readBuffer = null;
        try {
            channel.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot close " + path, e);
        }
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + path + ", " + tensors.size() + " tensors]";
    }

    /**
     * Copies little-endian file data ({@code src}) into native-order ND4J memory ({@code dst}). Typed NIO views do
     * the byte swapping when the orders differ and a bulk copy when they match, and copy bit patterns verbatim
     * (NaN payloads of F32/F64 survive).
     */
    private static void copyElements(SafetensorsDType dtype, ByteBuffer src, ByteBuffer dst) {
        switch (dtype) {
            case F16, BF16 -> {
                ShortBuffer halves = src.asShortBuffer();
                FloatBuffer floats = dst.asFloatBuffer();
                boolean bf16 = dtype == SafetensorsDType.BF16;
                for (int i = 0, n = halves.remaining(); i < n; i++) {
                    short bits = halves.get(i);
                    floats.put(i, bf16 ? SafetensorsDType.bf16ToFloat(bits) : SafetensorsDType.f16ToFloat(bits));
                }
            }
            case F64, I64 -> dst.asLongBuffer().put(src.asLongBuffer());
            case F32, I32 -> dst.asIntBuffer().put(src.asIntBuffer());
            case I8, U8, BOOL -> dst.put(src);
            default -> throw new IllegalStateException("unhandled dtype " + dtype);
        }
    }

    private static ByteBuffer readFully(FileChannel channel, long position, int length) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(length);
        readFully(channel, position, buffer);
        return buffer.flip();
    }

    /** Fills {@code buffer} from its position to its limit with the file's bytes from {@code position} on. */
    private static void readFully(FileChannel channel, long position, ByteBuffer buffer) throws IOException {
        int start = buffer.position();
        while (buffer.hasRemaining()) {
            if (channel.read(buffer, position + buffer.position() - start) < 0) {
                throw new EOFException("unexpected end of file at byte " + (position + buffer.position() - start));
            }
        }
    }

    /** Turns header bytes into validated tensor entries and metadata; every error names the file. */
    private static final class HeaderParser {
        private final Path path;
        private final long dataSize;
        final Map<String, SafetensorsTensorInfo> tensors = new TreeMap<>();
        final Map<String, String> metadata = new TreeMap<>();

        HeaderParser(Path path, long dataSize) {
            this.path = path;
            this.dataSize = dataSize;
        }

        void parse(ByteBuffer headerBytes) throws SafetensorsFormatException {
            JsonNode root = parseJsonObject(path, headerBytes, "header");
            for (Map.Entry<String, JsonNode> field : root.properties()) {
                if (METADATA_KEY.equals(field.getKey())) {
                    parseMetadata(field.getValue());
                } else {
                    tensors.put(field.getKey(), parseEntry(field.getKey(), field.getValue()));
                }
            }
            checkNoOverlap();
        }

        private void parseMetadata(JsonNode node) throws SafetensorsFormatException {
            if (node.isNull()) {
                return; // the reference implementation accepts "__metadata__": null
            }
            if (!node.isObject()) {
                throw error(METADATA_KEY + " is not a JSON object but " + describe(node));
            }
            for (Map.Entry<String, JsonNode> e : node.properties()) {
                if (!e.getValue().isTextual()) {
                    throw error(METADATA_KEY + " value of '" + e.getKey() + "' is not a string but "
                            + describe(e.getValue()));
                }
                metadata.put(e.getKey(), e.getValue().textValue());
            }
        }

        private SafetensorsTensorInfo parseEntry(String name, JsonNode node) throws SafetensorsFormatException {
            String where = "tensor '" + name + "': ";
            if (!node.isObject()) {
                throw error(where + "entry is not a JSON object but " + describe(node));
            }
            JsonNode dtypeNode = node.get("dtype");
            if (dtypeNode == null || !dtypeNode.isTextual()) {
                throw error(where + (dtypeNode == null ? "missing 'dtype'" : "'dtype' is not a string"));
            }
            SafetensorsDType dtype;
            try {
                dtype = SafetensorsDType.parse(dtypeNode.textValue());
            } catch (SafetensorsFormatException e) {
                throw error(where + e.getMessage());
            }
            long[] shape = longArray(where, node, "shape", -1);
            long[] offsets = longArray(where, node, "data_offsets", 2);
            for (long d : shape) {
                if (d < 0) {
                    throw error(where + "negative dimension in shape " + Arrays.toString(shape));
                }
            }
            long expectedBytes;
            try {
                long n = 1;
                for (long d : shape) {
                    n = Math.multiplyExact(n, d);
                }
                expectedBytes = Math.multiplyExact(n, dtype.byteSize());
            } catch (ArithmeticException e) {
                throw error(where + "shape " + Arrays.toString(shape) + " overflows (element or byte count > 2^63)");
            }
            long begin = offsets[0];
            long end = offsets[1];
            if (begin < 0 || end < 0) {
                throw error(where + "negative data_offsets [" + begin + ", " + end + "]");
            }
            if (begin > end) {
                throw error(where + "data_offsets begin > end [" + begin + ", " + end + "]");
            }
            if (end > dataSize) {
                throw error(where + "data_offsets [" + begin + ", " + end + "] extend beyond the data section ("
                        + dataSize + " bytes)");
            }
            if (end - begin != expectedBytes) {
                throw error(where + "shape " + Arrays.toString(shape) + " of dtype " + dtype + " needs "
                        + expectedBytes + " bytes but data_offsets [" + begin + ", " + end + "] span "
                        + (end - begin));
            }
            return new SafetensorsTensorInfo(name, dtype, shape, begin, end);
        }

        private long[] longArray(String where, JsonNode entry, String field, int requiredLength)
                throws SafetensorsFormatException {
            JsonNode node = entry.get(field);
            if (node == null) {
                throw error(where + "missing '" + field + "'");
            }
            if (!node.isArray()) {
                throw error(where + "'" + field + "' is not an array but " + describe(node));
            }
            if (requiredLength >= 0 && node.size() != requiredLength) {
                throw error(where + "'" + field + "' has " + node.size() + " elements, expected " + requiredLength);
            }
            long[] values = new long[node.size()];
            for (int i = 0; i < values.length; i++) {
                JsonNode v = node.get(i);
                if (!v.isIntegralNumber() || !v.canConvertToLong()) {
                    throw error(where + "'" + field + "' element " + v + " is not an integer in the long range");
                }
                values[i] = v.longValue();
            }
            return values;
        }

        /** Zero-byte tensors hold no data, so they cannot overlap anything. */
        private void checkNoOverlap() throws SafetensorsFormatException {
            List<SafetensorsTensorInfo> ranges = new ArrayList<>();
            for (SafetensorsTensorInfo t : tensors.values()) {
                if (t.byteLength() > 0) {
                    ranges.add(t);
                }
            }
            ranges.sort(Comparator.comparingLong(SafetensorsTensorInfo::begin));
            for (int i = 1; i < ranges.size(); i++) {
                SafetensorsTensorInfo prev = ranges.get(i - 1);
                SafetensorsTensorInfo cur = ranges.get(i);
                if (cur.begin() < prev.end()) {
                    throw error("byte ranges of tensors '" + prev.name() + "' [" + prev.begin() + ", " + prev.end()
                            + ") and '" + cur.name() + "' [" + cur.begin() + ", " + cur.end() + ") overlap");
                }
            }
        }

        private SafetensorsFormatException error(String problem) {
            return new SafetensorsFormatException(path, problem);
        }
    }

    /**
     * Decodes strict UTF-8 and parses a JSON object with duplicate keys rejected; shared with the checkpoint index.
     *
     * @param what how the error message calls the text, e.g. "header"
     */
    static JsonNode parseJsonObject(Path path, ByteBuffer utf8, String what) throws SafetensorsFormatException {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(utf8).toString();
        } catch (CharacterCodingException e) {
            throw new SafetensorsFormatException(path, what + " is not valid UTF-8", e);
        }
        JsonNode root;
        try {
            root = STRICT_JSON.readTree(text);
        } catch (JsonProcessingException e) {
            String detail = e.getOriginalMessage();
            if (detail != null && detail.startsWith("Duplicate field")) {
                throw new SafetensorsFormatException(path, what + " has a duplicate key: " + detail, e);
            }
            throw new SafetensorsFormatException(path, what + " is not valid JSON: " + detail, e);
        }
        if (root == null || !root.isObject()) {
            throw new SafetensorsFormatException(path, what + " is not a JSON object but "
                    + (root == null ? "empty" : describe(root)));
        }
        return root;
    }

    private static String describe(JsonNode node) {
        return node.isMissingNode() ? "empty" : "a JSON " + node.getNodeType().name().toLowerCase();
    }
}
