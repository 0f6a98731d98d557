package org.dl4jmtp.ui;

import org.deeplearning4j.core.storage.Persistable;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One MTP record in a DL4J {@code StatsStorage} (type ID {@value #TYPE_ID}): the run's static info, a training step, or
 * a validation. Per-head arrays follow the trainer's convention: index 0 is the main head, index d the MTP depth d.
 *
 * <p>Encoded with {@link DataOutputStream} (big-endian, a format version first). {@code FileStatsStorage} decodes records
 * by instantiating this class through its public no-arg constructor, so the class name is part of the file format.
 */
public final class MtpStatsRecord implements Persistable {

    public static final String TYPE_ID = "MtpStats";
    /** One worker per training run: the MTP records of a session all live under this worker ID. */
    public static final String WORKER_ID = "mtp";

    private static final int FORMAT_VERSION = 1;

    /** What a record holds. */
    public enum Kind { RUN_INFO, STEP, VALIDATION }

    private String sessionId;
    private long timestamp;
    private Kind kind;
    private long step;
    /** RUN_INFO: a one-line description of the run (model, MTP depths). */
    private String description = "";
    /** RUN_INFO: number of MTP depths D. */
    private int depths;

    // STEP
    private double learningRate;
    private double totalLoss;
    private double[] trainLoss = new double[0];
    private double tokensPerSecond;

    // VALIDATION
    private double[] validationLoss = new double[0];
    private double[] accuracyVsLabels = new double[0];
    private double[] accuracyVsMain = new double[0];
    private double acceptanceLength;
    private Map<String, double[]> expertLoad = Collections.emptyMap();

    /** For decoding (FileStatsStorage instantiates records reflectively). */
    public MtpStatsRecord() {
    }

    static MtpStatsRecord runInfo(String sessionId, long timestamp, String description, int depths) {
        MtpStatsRecord r = new MtpStatsRecord(sessionId, timestamp, Kind.RUN_INFO, 0);
        r.description = description == null ? "" : description;
        r.depths = depths;
        return r;
    }

    static MtpStatsRecord step(String sessionId, long timestamp, long step, double learningRate, double totalLoss,
                               double[] lossPerHead, double tokensPerSecond) {
        MtpStatsRecord r = new MtpStatsRecord(sessionId, timestamp, Kind.STEP, step);
        r.learningRate = learningRate;
        r.totalLoss = totalLoss;
        r.trainLoss = lossPerHead.clone();
        r.tokensPerSecond = tokensPerSecond;
        return r;
    }

    static MtpStatsRecord validation(String sessionId, long timestamp, long step, double[] lossPerHead,
                                     double[] accuracyVsLabels, double[] accuracyVsMain, double acceptanceLength,
                                     Map<String, double[]> expertLoad) {
        MtpStatsRecord r = new MtpStatsRecord(sessionId, timestamp, Kind.VALIDATION, step);
        r.validationLoss = lossPerHead.clone();
        r.accuracyVsLabels = accuracyVsLabels.clone();
        r.accuracyVsMain = accuracyVsMain.clone();
        r.acceptanceLength = acceptanceLength;
        Map<String, double[]> load = new LinkedHashMap<>();
        expertLoad.forEach((layer, fractions) -> load.put(layer, fractions.clone()));
        r.expertLoad = load;
        return r;
    }

    private MtpStatsRecord(String sessionId, long timestamp, Kind kind, long step) {
        this.sessionId = sessionId;
        this.timestamp = timestamp;
        this.kind = kind;
        this.step = step;
    }

    public Kind kind() {
        return kind;
    }

    public long step() {
        return step;
    }

    public String description() {
        return description;
    }

    public int depths() {
        return depths;
    }

    public double learningRate() {
        return learningRate;
    }

    public double totalLoss() {
        return totalLoss;
    }

    /** STEP: training loss per head (index 0 main, d depth d), nats per token. */
    public double[] trainLoss() {
        return trainLoss.clone();
    }

    public double tokensPerSecond() {
        return tokensPerSecond;
    }

    /** VALIDATION: loss per head (index 0 main), nats per token. */
    public double[] validationLoss() {
        return validationLoss.clone();
    }

    public double[] accuracyVsLabels() {
        return accuracyVsLabels.clone();
    }

    public double[] accuracyVsMain() {
        return accuracyVsMain.clone();
    }

    public double acceptanceLength() {
        return acceptanceLength;
    }

    /** VALIDATION: per MoE layer, the fraction of routed tokens per expert (each row sums to 1). */
    public Map<String, double[]> expertLoad() {
        Map<String, double[]> copy = new LinkedHashMap<>();
        expertLoad.forEach((layer, fractions) -> copy.put(layer, fractions.clone()));
        return copy;
    }

    // ----- Persistable -----

    @Override
    public String getSessionID() {
        return sessionId;
    }

    @Override
    public String getTypeID() {
        return TYPE_ID;
    }

    @Override
    public String getWorkerID() {
        return WORKER_ID;
    }

    @Override
    public long getTimeStamp() {
        return timestamp;
    }

    @Override
    public int encodingLengthBytes() {
        return encode().length;
    }

    @Override
    public byte[] encode() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
        try {
            encode(bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return bytes.toByteArray();
    }

    @Override
    public void encode(ByteBuffer buffer) {
        buffer.put(encode());
    }

    @Override
    public void encode(OutputStream outputStream) throws IOException {
        DataOutputStream out = new DataOutputStream(outputStream);
        out.writeInt(FORMAT_VERSION);
        out.writeUTF(sessionId);
        out.writeLong(timestamp);
        out.writeByte(kind.ordinal());
        out.writeLong(step);
        switch (kind) {
            case RUN_INFO -> {
                out.writeUTF(description);
                out.writeInt(depths);
            }
            case STEP -> {
                out.writeDouble(learningRate);
                out.writeDouble(totalLoss);
                writeArray(out, trainLoss);
                out.writeDouble(tokensPerSecond);
            }
            case VALIDATION -> {
                writeArray(out, validationLoss);
                writeArray(out, accuracyVsLabels);
                writeArray(out, accuracyVsMain);
                out.writeDouble(acceptanceLength);
                out.writeInt(expertLoad.size());
                for (Map.Entry<String, double[]> e : expertLoad.entrySet()) {
                    out.writeUTF(e.getKey());
                    writeArray(out, e.getValue());
                }
            }
        }
        out.flush();
    }

    @Override
    public void decode(byte[] bytes) {
        try {
            decode(new ByteArrayInputStream(bytes));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void decode(ByteBuffer buffer) {
        byte[] bytes = new byte[buffer.remaining()];
        buffer.get(bytes);
        decode(bytes);
    }

    @Override
    public void decode(InputStream inputStream) throws IOException {
        DataInputStream in = new DataInputStream(inputStream);
        int version = in.readInt();
        if (version != FORMAT_VERSION) {
            throw new IOException("Unsupported " + TYPE_ID + " record format " + version + " (this build reads "
                    + FORMAT_VERSION + ")");
        }
        sessionId = in.readUTF();
        timestamp = in.readLong();
        kind = Kind.values()[in.readByte()];
        step = in.readLong();
        switch (kind) {
            case RUN_INFO -> {
                description = in.readUTF();
                depths = in.readInt();
            }
            case STEP -> {
                learningRate = in.readDouble();
                totalLoss = in.readDouble();
                trainLoss = readArray(in);
                tokensPerSecond = in.readDouble();
            }
            case VALIDATION -> {
                validationLoss = readArray(in);
                accuracyVsLabels = readArray(in);
                accuracyVsMain = readArray(in);
                acceptanceLength = in.readDouble();
                int layers = in.readInt();
                Map<String, double[]> load = new LinkedHashMap<>();
                for (int i = 0; i < layers; i++) {
                    load.put(in.readUTF(), readArray(in));
                }
                expertLoad = load;
            }
        }
    }

    private static void writeArray(DataOutputStream out, double[] values) throws IOException {
        out.writeInt(values.length);
        for (double v : values) {
            out.writeDouble(v);
        }
    }

    private static double[] readArray(DataInputStream in) throws IOException {
        int n = in.readInt();
        if (n < 0 || n > 1 << 20) {
            throw new IOException("Corrupt " + TYPE_ID + " record: array length " + n);
        }
        double[] values = new double[n];
        for (int i = 0; i < n; i++) {
            values[i] = in.readDouble();
        }
        return values;
    }

    @Override
    public String toString() {
        return TYPE_ID + "[" + kind + " step " + step + ", session " + sessionId + "]";
    }
}
