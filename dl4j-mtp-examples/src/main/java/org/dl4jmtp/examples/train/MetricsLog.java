package org.dl4jmtp.examples.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dl4jmtp.io.AtomicFiles;
import org.dl4jmtp.losses.MtpLossReport;

import java.io.BufferedWriter;
import java.io.Closeable;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code metrics.jsonl}: one JSON object per logged step (flushed as written, continued on resume), plus an in-memory
 * copy of the rows for the chart.
 */
public final class MetricsLog implements Closeable {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final BufferedWriter out;
    private final List<ObjectNode> rows = new ArrayList<>();

    /** A new log ({@code append} false) or one continued with every row kept. */
    public MetricsLog(Path file, boolean append) throws IOException {
        this(file, append ? Long.MAX_VALUE : -1);
    }

    /**
     * Opens {@code file} to continue a run from step {@code keepThroughStep}: rows of later steps (written by a run
     * that was interrupted after its last checkpoint) are dropped, so that the resumed run logs each step once. A
     * negative {@code keepThroughStep} starts an empty log.
     *
     * @throws IOException naming the file and line when a row other than the last one is not JSON (a process killed
     *                     mid-write can only cut the last row, which is dropped)
     */
    public MetricsLog(Path file, long keepThroughStep) throws IOException {
        if (keepThroughStep >= 0 && Files.exists(file)) {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            StringBuilder kept = new StringBuilder();
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i);
                if (line.isBlank()) {
                    continue;
                }
                ObjectNode row;
                try {
                    row = (ObjectNode) JSON.readTree(line);
                } catch (IOException | ClassCastException e) {
                    if (i == lines.size() - 1) {
                        break;   // the row being written when the process was killed
                    }
                    throw new IOException(file + ", line " + (i + 1) + ": not a metrics row (" + e.getMessage() + ")", e);
                }
                if (row.path("step").asLong(Long.MAX_VALUE) <= keepThroughStep) {
                    rows.add(row);
                    kept.append(line).append('\n');
                }
            }
            if (rows.size() != lines.stream().filter(l -> !l.isBlank()).count()) {
                AtomicFiles.writeString(file, kept.toString());
            }
        }
        this.out = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                keepThroughStep >= 0 ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE);
    }

    /** A row for a training step. */
    public static ObjectNode trainRow(long step, double learningRate, MtpLossReport losses, double tokensPerSecond,
                                      double elapsedSeconds) {
        ObjectNode row = JSON.createObjectNode();
        row.put("step", step);
        row.put("lr", learningRate);
        row.put("loss", losses.totalLoss());
        row.put("loss_main", losses.mainLoss());
        ArrayNode depths = row.putArray("mtp_losses");
        for (int d = 1; d <= losses.depths(); d++) {
            depths.add(losses.depthLosses()[d]);
        }
        row.put("mtp_loss", losses.mtpLoss());
        row.put("tokens_per_s", tokensPerSecond);
        row.put("elapsed_s", elapsedSeconds);
        return row;
    }

    /** Adds the validation fields ({@code val_*}) to a row. */
    public static void addValidation(ObjectNode row, ValidationReport v) {
        row.put("val_loss_main", v.mainLoss());
        row.put("val_ppl", v.perplexity());
        ArrayNode losses = row.putArray("val_mtp_losses");
        ArrayNode accLabels = row.putArray("val_mtp_acc_vs_labels");
        ArrayNode accMain = row.putArray("val_mtp_acc_vs_main");
        for (int d = 1; d < v.lossPerToken().length; d++) {
            losses.add(v.lossPerToken()[d]);
            accLabels.add(v.accuracyVsLabels()[d]);
            accMain.add(v.accuracyVsMain()[d]);
        }
        row.put("val_acc_main", v.accuracyVsLabels()[0]);
        row.put("val_simulated_accept_length", v.simulatedAcceptLength());
        ObjectNode load = row.putObject("val_expert_load");
        for (Map.Entry<String, double[]> e : v.expertLoad().entrySet()) {
            ArrayNode fractions = load.putArray(e.getKey());
            for (double f : e.getValue()) {
                fractions.add(f);
            }
        }
    }

    public void write(ObjectNode row) throws IOException {
        out.write(JSON.writeValueAsString(row));
        out.newLine();
        out.flush();
        rows.add(row);
    }

    public List<ObjectNode> rows() {
        return rows;
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}
