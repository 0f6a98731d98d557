package org.dl4jmtp.examples.bench;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.dataset.api.MultiDataSet;

import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * SameDiff op-level timings of a DL4J graph: a listener attached to the SameDiff instance (and its "grad" function) of
 * every SameDiff layer, accumulating wall time per op type and per layer between {@code preOpExecution} and
 * {@code opExecution}. Time outside ops (DL4J glue, session bookkeeping, updater) is not seen here; compare the sum
 * with the step time.
 */
public final class OpProfiler extends BaseListener {

    /** Accumulated time and calls. */
    public static final class Stat {
        public long nanos;
        public long calls;
    }

    private final Map<Object, Long> started = new IdentityHashMap<>();
    private final Map<SameDiff, String> layerOf = new IdentityHashMap<>();
    private final Map<String, Stat> byOp = new TreeMap<>();
    private final Map<String, Stat> byLayer = new TreeMap<>();
    private final Map<String, Stat> byLayerOp = new TreeMap<>();
    private final Map<String, Stat> byInstance = new TreeMap<>();
    private boolean enabled;

    @Override
    public boolean isActive(Operation operation) {
        return true;
    }

    /** Attaches to every SameDiff layer of {@code graph} that has been initialised (call after one fit). */
    public int attach(ComputationGraph graph) {
        int n = 0;
        for (Layer layer : graph.getLayers()) {
            SameDiff sd = sameDiffOf(layer);
            if (sd == null) {
                continue;
            }
            String name = layer.getConfig().getLayerName();
            addTo(sd, name);
            n++;
            SameDiff grad = sd.getFunction("grad");
            if (grad != null) {
                addTo(grad, name);
            }
        }
        return n;
    }

    private void addTo(SameDiff sd, String layerName) {
        if (!layerOf.containsKey(sd)) {
            layerOf.put(sd, layerName);
            sd.addListeners(this);
        }
    }

    private static SameDiff sameDiffOf(Layer layer) {
        for (Class<?> c = layer.getClass(); c != null; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField("sameDiff");
                f.setAccessible(true);
                return (SameDiff) f.get(layer);
            } catch (NoSuchFieldException e) {
                // try the superclass
            } catch (IllegalAccessException e) {
                return null;
            }
        }
        return null;
    }

    public void setEnabled(boolean enabled) {
        this.enabled = enabled;
    }

    @Override
    public void preOpExecution(SameDiff sd, At at, SameDiffOp op, OpContext opContext) {
        if (enabled) {
            started.putIfAbsent(op, System.nanoTime());
        }
    }

    @Override
    public void opExecution(SameDiff sd, At at, MultiDataSet batch, SameDiffOp op, OpContext opContext, INDArray[] outputs) {
        Long t0 = started.remove(op);
        if (t0 == null) {
            return;
        }
        long dt = System.nanoTime() - t0;
        String opName = op.getOp().opName();
        String layer = layerOf.getOrDefault(sd, "?");
        add(byOp, opName, dt);
        add(byLayer, layer, dt);
        add(byLayerOp, layer + " / " + opName, dt);
        // one op of the graph (its own name and output shape), summed over layers of the same structure
        String shape = outputs != null && outputs.length > 0 && outputs[0] != null
                ? java.util.Arrays.toString(outputs[0].shape()) : "";
        add(byInstance, opName + " " + op.getName() + " " + shape, dt);
    }

    private static void add(Map<String, Stat> m, String key, long dt) {
        Stat s = m.computeIfAbsent(key, k -> new Stat());
        s.nanos += dt;
        s.calls++;
    }

    public long totalNanos() {
        return byOp.values().stream().mapToLong(s -> s.nanos).sum();
    }

    /** Top entries as ordered maps {name: {seconds_per_step, calls_per_step, share}}. */
    public Map<String, Object> report(int steps, int top) {
        Map<String, Object> out = new LinkedHashMap<>();
        double total = totalNanos();
        out.put("op_seconds_per_step", total / 1e9 / steps);
        out.put("by_op", topOf(byOp, steps, top, total));
        out.put("by_layer", topOf(byLayer, steps, top, total));
        out.put("by_layer_op", topOf(byLayerOp, steps, top, total));
        out.put("by_op_instance", topOf(byInstance, steps, top, total));
        return out;
    }

    private static Map<String, Object> topOf(Map<String, Stat> m, int steps, int top, double total) {
        List<Map.Entry<String, Stat>> entries = new ArrayList<>(m.entrySet());
        entries.sort((a, b) -> Long.compare(b.getValue().nanos, a.getValue().nanos));
        Map<String, Object> out = new LinkedHashMap<>();
        for (Map.Entry<String, Stat> e : entries.subList(0, Math.min(top, entries.size()))) {
            Map<String, Object> v = new LinkedHashMap<>();
            v.put("s_per_step", e.getValue().nanos / 1e9 / steps);
            v.put("calls_per_step", (double) e.getValue().calls / steps);
            v.put("share", e.getValue().nanos / total);
            out.put(e.getKey(), v);
        }
        return out;
    }
}
