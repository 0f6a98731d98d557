package org.dl4jmtp.model;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.losses.MtpLossLayer;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossReporting;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * A NemotronV3 {@link ComputationGraph} that computes each training step's gradient on {@code replicas} slices of the
 * minibatch at once, one thread per slice, and combines them into exactly the gradient of the whole batch; the
 * optimizer, listeners, iteration counts and serialisation are DL4J's own, unchanged.
 *
 * <p>Why: ND4J M2.1 executes a SameDiff layer op by op, and each op is too small to keep two cores busy (a small-preset
 * step took as long with one ND4J thread as with two). Slices of the batch run on separate cores instead. Run ND4J
 * single-threaded with it ({@code OMP_NUM_THREADS=1}, {@code OPENBLAS_NUM_THREADS=1}), one replica per core.
 *
 * <p>Exactness: with the default NeMo-Automodel normalisation the total loss is Σ_slices (N_s / N)·total_s, N_s being
 * the slice's main label count, so the combined gradient is exact (up to float summation order). With
 * {@link MtpLossNormalization#PER_DEPTH_COUNT} it is exact only when every depth's label count splits like the main
 * count (always so without ignored labels or document boundaries); otherwise that step is recomputed on the whole
 * batch, which gives the exact result at serial speed. The input masks (the document ids of packed documents) are
 * split with the batch; a batch with label masks runs serially.
 * The replicas share this graph's parameter array; only their gradients and activations are their own. The
 * optimizer step is shared out between the same threads ({@link ParallelBlockUpdater}).
 */
public class DataParallelGraph extends ComputationGraph {

    private final int replicaCount;
    private transient List<ComputationGraph> replicas;
    private transient List<ExecutorService> workers;
    private transient INDArray[] currentLabels;

    private DataParallelGraph(ComputationGraph source, int replicas) {
        super(source.getConfiguration().clone());
        if (replicas < 1) {
            throw new IllegalArgumentException("replicas must be >= 1, got " + replicas);
        }
        this.replicaCount = replicas;
    }

    /**
     * A data-parallel graph that continues training {@code source}: same configuration, a copy of its parameters,
     * updater state and iteration/epoch counts (not its listeners). Use the returned graph from then on.
     */
    public static DataParallelGraph of(ComputationGraph source, int replicas) {
        DataParallelGraph graph = new DataParallelGraph(source, replicas);
        graph.init(source.params().dup(), false);
        INDArray sourceState = source.getUpdater(false) == null ? null : source.getUpdater().getStateViewArray();
        if (sourceState != null) {
            graph.getUpdater().getStateViewArray().assign(sourceState);
        }
        graph.setUpdater(new ParallelBlockUpdater(graph, graph.getUpdater().getStateViewArray(), () -> graph.workers));
        graph.getConfiguration().setIterationCount(source.getConfiguration().getIterationCount());
        graph.getConfiguration().setEpochCount(source.getConfiguration().getEpochCount());
        return graph;
    }

    public int replicas() {
        return replicaCount;
    }

    /** The graphs computing slices 1.. of a step (none before the first data-parallel step). */
    public List<ComputationGraph> replicaGraphs() {
        return replicas == null ? List.of() : java.util.Collections.unmodifiableList(replicas);
    }

    /**
     * One replica per core, at most one per sequence of the batch (with ND4J single-threaded, as {@code dl4j-mtp}'s
     * launcher runs {@code train} and {@code bench}, which use it for models large enough to gain from it).
     */
    public static int defaultReplicas(int batchSize) {
        return Math.max(1, Math.min(Runtime.getRuntime().availableProcessors(), batchSize));
    }

    @Override
    public void setLabels(INDArray... labels) {
        super.setLabels(labels);
        this.currentLabels = labels;
    }

    @Override
    public void computeGradientAndScore(LayerWorkspaceMgr workspaceMgr) {
        INDArray[] inputs = getInputs();
        INDArray[] labels = currentLabels;
        long batch = inputs == null || inputs.length == 0 ? 0 : inputs[0].size(0);
        int slices = (int) Math.min(replicaCount, batch);
        if (slices < 2 || labels == null || hasAny(getLabelMaskArrays())) {
            super.computeGradientAndScore(workspaceMgr);
            return;
        }
        ensureReplicas();
        long[] bounds = sliceBounds(batch, slices);
        INDArray[] masks = hasAny(getInputMaskArrays()) ? getInputMaskArrays() : null;
        List<Runnable> work = new ArrayList<>();
        work.add(() -> {
            super.setInputs(rows(inputs, bounds[0], bounds[1]));
            super.setLabels(rows(labels, bounds[0], bounds[1]));
            super.setLayerMaskArrays(masks == null ? null : rows(masks, bounds[0], bounds[1]), null);
            super.computeGradientAndScore(workspaceMgr);
        });
        for (int s = 1; s < slices; s++) {
            ComputationGraph replica = replicas.get(s - 1);
            INDArray[] sliceInputs = rows(inputs, bounds[s], bounds[s + 1]);
            INDArray[] sliceLabels = rows(labels, bounds[s], bounds[s + 1]);
            INDArray[] sliceMasks = masks == null ? null : rows(masks, bounds[s], bounds[s + 1]);
            work.add(() -> {
                replica.setInputs(sliceInputs);
                replica.setLabels(sliceLabels);
                replica.setLayerMaskArrays(sliceMasks, null);
                replica.computeGradientAndScore();
            });
        }
        try {
            SharedWork.run(workers, work);
        } finally {
            super.setInputs(inputs);
            setLabels(labels);
            super.setLayerMaskArrays(masks, null);
        }
        combine(slices, bounds, batch, workspaceMgr);
    }

    /** Weights every slice's gradient, score and report by its share of the main labels. */
    private void combine(int slices, long[] bounds, long batch, LayerWorkspaceMgr workspaceMgr) {
        List<ComputationGraph> graphs = new ArrayList<>();
        graphs.add(this);
        graphs.addAll(replicas.subList(0, slices - 1));
        List<MtpLossReport> reports = new ArrayList<>();
        for (ComputationGraph g : graphs) {
            reports.add(lossLayer(g).lastReport());
        }
        MtpLossNormalization normalization = ((MtpLossLayer) getLayer(GraphNames.LM_HEAD).conf().getLayer()).getNormalization();
        if (!splitsExactly(reports, normalization)) {
            ExpertLoad.discard(this);   // the whole batch's forward pass below counts the expert loads again
            super.computeGradientAndScore(workspaceMgr);  // exact, at serial speed
            return;
        }
        double[] weights = mainLabelShares(reports, bounds, batch);
        // The raw gradient of a slice is minibatch_s · d total_s/dθ (MtpLossLayer); DL4J's updater divides by the
        // whole minibatch, so the combined raw gradient is batch · Σ_s weight_s · gradient_s / minibatch_s.
        double[] factors = new double[slices];
        double score = 0;
        for (int s = 0; s < slices; s++) {
            factors[s] = batch * weights[s] / (bounds[s + 1] - bounds[s]);
            score += weights[s] * graphs.get(s).score();
        }
        // gradient = Σ_s factor_s · gradient_s, in place; each thread sums its own range of the parameters
        INDArray gradient = getFlattenedGradients();
        long[] ranges = SharedWork.bounds(gradient.length(), slices);
        List<Runnable> work = new ArrayList<>();
        for (int r = 0; r < slices; r++) {
            long from = ranges[r];
            long to = ranges[r + 1];
            work.add(() -> {
                INDArray sum = SharedWork.range(gradient, from, to).muli(factors[0]);
                for (int s = 1; s < slices; s++) {
                    INDArray part = SharedWork.range(graphs.get(s).getFlattenedGradients(), from, to);
                    Nd4j.getBlasWrapper().level1().axpy(sum.length(), factors[s], part, sum);
                }
            });
        }
        SharedWork.run(workers, work);
        setScore(score);
        lossLayer(this).setLastReport(MtpLossReport.combine(reports, normalization));
    }

    /** True when weighting each slice by its main label share reproduces every depth's normalisation. */
    private static boolean splitsExactly(List<MtpLossReport> reports, MtpLossNormalization normalization) {
        if (normalization == MtpLossNormalization.MAIN_LABEL_COUNT) {
            return true;
        }
        int depths = reports.get(0).depths();
        long[] totals = MtpLossReport.totalCounts(reports);
        for (MtpLossReport r : reports) {
            for (int d = 1; d <= depths; d++) {
                if (r.labelCounts()[d] * totals[0] != r.labelCounts()[0] * totals[d]) {
                    return false;
                }
            }
        }
        return true;
    }

    /** N_s / N per slice; by rows when no slice has a main label (every loss is then 0). */
    private static double[] mainLabelShares(List<MtpLossReport> reports, long[] bounds, long batch) {
        long total = MtpLossReport.totalCounts(reports)[0];
        double[] weights = new double[reports.size()];
        for (int s = 0; s < weights.length; s++) {
            weights[s] = total > 0 ? (double) reports.get(s).labelCounts()[0] / total
                    : (double) (bounds[s + 1] - bounds[s]) / batch;
        }
        return weights;
    }

    private void ensureReplicas() {
        if (replicas != null) {
            return;
        }
        replicas = new ArrayList<>();
        workers = new ArrayList<>();
        for (int r = 1; r < replicaCount; r++) {
            ComputationGraph replica = new ComputationGraph(getConfiguration().clone());
            replica.init(params(), false);  // shares this graph's parameter array: updates are seen at once
            replicas.add(replica);
            int id = r;
            workers.add(Executors.newSingleThreadExecutor(task -> {
                Thread t = new Thread(task, "dl4j-mtp-replica-" + id);
                t.setDaemon(true);
                return t;
            }));
        }
    }

    private static MtpLossReporting lossLayer(ComputationGraph graph) {
        return (MtpLossReporting) graph.getLayer(GraphNames.LM_HEAD);
    }

    /** Slice boundaries: {@code slices} contiguous row ranges of sizes differing by at most one. */
    static long[] sliceBounds(long batch, int slices) {
        return SharedWork.bounds(batch, slices);
    }

    private static INDArray[] rows(INDArray[] arrays, long from, long to) {
        INDArray[] out = new INDArray[arrays.length];
        for (int i = 0; i < arrays.length; i++) {
            INDArrayIndex[] index = new INDArrayIndex[arrays[i].rank()];
            Arrays.fill(index, NDArrayIndex.all());
            index[0] = NDArrayIndex.interval(from, to);
            out[i] = arrays[i].get(index).dup();
        }
        return out;
    }

    private static boolean hasAny(INDArray[] arrays) {
        return arrays != null && Arrays.stream(arrays).anyMatch(a -> a != null);
    }
}
