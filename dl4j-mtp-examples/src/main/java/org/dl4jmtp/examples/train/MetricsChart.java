package org.dl4jmtp.examples.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dl4jmtp.io.AtomicFiles;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** {@code metrics.png}: training and validation losses per depth, and the simulated acceptance length, over steps. */
public final class MetricsChart {

    private MetricsChart() {
    }

    public static void write(List<ObjectNode> rows, Path png) throws IOException {
        XYChart losses = new XYChartBuilder().width(900).height(520).title("dl4j-mtp training")
                .xAxisTitle("step").yAxisTitle("loss (nats/token)").build();
        addSeries(losses, rows, "train main", r -> r.get("loss_main"));
        addSeries(losses, rows, "val main", r -> r.get("val_loss_main"));
        int depths = rows.isEmpty() || rows.get(0).get("mtp_losses") == null ? 0 : rows.get(0).get("mtp_losses").size();
        for (int d = 0; d < depths; d++) {
            int depth = d;
            addSeries(losses, rows, "train MTP d" + (d + 1), r -> r.path("mtp_losses").get(depth));
            addSeries(losses, rows, "val MTP d" + (d + 1), r -> r.path("val_mtp_losses").get(depth));
        }
        XYChart accept = new XYChartBuilder().width(900).height(320).title("simulated acceptance length (greedy, D drafts)")
                .xAxisTitle("step").yAxisTitle("tokens / verify step").build();
        addSeries(accept, rows, "accept length", r -> r.get("val_simulated_accept_length"));

        AtomicFiles.write(png, temp -> {
            try (OutputStream out = Files.newOutputStream(temp)) {
                BitmapEncoder.saveBitmap(List.of(losses, accept), 2, 1, out, BitmapEncoder.BitmapFormat.PNG);
            }
        });
    }

    private static void addSeries(XYChart chart, List<ObjectNode> rows, String name,
                                  java.util.function.Function<JsonNode, JsonNode> field) {
        List<Double> x = new ArrayList<>();
        List<Double> y = new ArrayList<>();
        for (ObjectNode row : rows) {
            JsonNode v = field.apply(row);
            if (v != null && v.isNumber()) {
                x.add(row.get("step").asDouble());
                y.add(v.asDouble());
            }
        }
        if (!x.isEmpty()) {
            chart.addSeries(name, x, y).setMarker(org.knowm.xchart.style.markers.SeriesMarkers.NONE);
        }
    }
}
