package org.dl4jmtp.spark;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.util.CollectionAccumulator;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.deeplearning4j.spark.api.TrainingMaster;
import org.deeplearning4j.spark.impl.graph.SparkComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.train.CheckpointStore;
import org.dl4jmtp.examples.train.CorpusTrainingData;
import org.dl4jmtp.examples.train.MetricsChart;
import org.dl4jmtp.examples.train.MetricsLog;
import org.dl4jmtp.examples.train.TrainOptions;
import org.dl4jmtp.examples.train.Trainer;
import org.dl4jmtp.examples.train.TrainingObserver;
import org.dl4jmtp.examples.train.ValidationReport;
import org.dl4jmtp.examples.train.Validator;
import org.dl4jmtp.examples.train.WarmupCosineSchedule;
import org.dl4jmtp.io.AtomicFiles;
import org.dl4jmtp.io.SafetensorsDType;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.dataset.api.MultiDataSet;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.LongStream;

/**
 * The driver of a Spark run: the same model, data, schedule and outputs as {@code train} ({@link Trainer}), with each
 * round of {@code averagingFrequency} steps fitted by {@link SparkComputationGraph} on {@code workers} workers.
 *
 * <p>Round r hands the workers training batches {@code [r·W·F, (r+1)·W·F)} of the run's deterministic batch sequence
 * ({@link TrainingBatches}, built on the executors from the broadcast token stream); the training master splits them
 * among the workers. After each round the driver's graph holds the combined parameters (and, for parameter averaging,
 * the averaged Adam state); the driver then logs every step of the round to {@code metrics.jsonl} (the workers' MTP
 * loss reports, combined per step, arrive through {@link LossCollector}), validates, checkpoints and, at the end,
 * writes the HF export — all into the run directory on the driver.
 *
 * <p>A step is one optimizer update of each worker: W batches of {@code batchSize} sequences. With one worker this is
 * exactly {@code train}'s run (the same batches, updates and schedule).
 */
public final class SparkTrainer {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String RUN_FILE = "run.json";

    private final JavaSparkContext spark;
    private final Path runDir;
    private final PrintStream log;
    private final List<TrainingObserver> observers = new ArrayList<>();
    private final List<TrainingListener> workerListeners = new ArrayList<>();
    private org.deeplearning4j.core.storage.StatsStorageRouter statsRouter;
    private SafetensorsDType saveDType;
    private Trainer.DataSettings dataSettings;

    public SparkTrainer(JavaSparkContext spark, Path runDir, PrintStream log) {
        this.spark = spark;
        this.runDir = runDir;
        this.log = log;
    }

    /** Observers of the per-step losses (combined over the workers) and of each validation, on the driver. */
    public SparkTrainer addObserver(TrainingObserver observer) {
        observers.add(observer);
        return this;
    }

    /**
     * DL4J listeners that run on the workers (e.g. the UI's StatsListener), their stats routed back to {@code router}
     * on the driver by the training master. Parameter averaging only: shared training returns no listener stats.
     */
    public SparkTrainer workerListeners(org.deeplearning4j.core.storage.StatsStorageRouter router,
                                        List<TrainingListener> listeners) {
        this.statsRouter = router;
        this.workerListeners.clear();
        this.workerListeners.addAll(listeners);
        return this;
    }

    /** The dtype of the HF export (null: source dtypes, float32 for a trained model), as {@code train --save-dtype}. */
    public SparkTrainer saveDType(SafetensorsDType dtype) {
        NemotronV3ForCausalLM.SaveOptions.defaults().withDType(dtype);   // validates
        this.saveDType = dtype;
        return this;
    }

    /** Records where the data comes from in {@code run.json}. */
    public SparkTrainer dataSettings(Trainer.DataSettings settings) {
        this.dataSettings = settings;
        return this;
    }

    /** The outcome of a run. */
    public record Result(long lastStep, ValidationReport lastValidation, Path lastCheckpoint, Path hfExport,
                         double seconds, double tokensPerSecond) {
    }

    /**
     * Trains a new model in the run directory.
     *
     * @throws IllegalArgumentException if {@code options.steps()} is not a multiple of the averaging frequency
     * @throws Trainer.TrainingDivergedException on a NaN or infinite loss (the last good checkpoint is kept)
     */
    public Result train(NemotronV3Config config, MtpConfig mtp, TrainOptions options, CorpusTrainingData data,
                        SparkSettings settings) throws IOException {
        int f = settings.averagingFrequency();
        if (options.steps() % f != 0) {
            throw new IllegalArgumentException("--steps " + options.steps() + " is not a multiple of --averaging-frequency "
                    + f + ": every round makes " + f + " steps");
        }
        Files.createDirectories(runDir);
        String runJson = runJson(config, mtp, options, settings);
        AtomicFiles.writeString(runDir.resolve(RUN_FILE), runJson);

        ComputationGraph graph = Trainer.newGraph(config, mtp, options);
        TrainingMaster<?, ?> master = settings.build(options.batchSize(), options.seed());
        CollectionAccumulator<WorkerLosses> losses = spark.sc().collectionAccumulator("dl4j-mtp step losses");
        IterationCountRestorer stepCount = new IterationCountRestorer();
        List<TrainingListener> listeners = new ArrayList<>();
        // SharedTrainingMaster ships the stats router itself to the workers (a stats file cannot travel) and, in
        // 1.0.0-M2, returns no listener stats: the worker listeners are for parameter averaging only
        boolean workerStats = !settings.shared() && !workerListeners.isEmpty();
        if (settings.shared() && !workerListeners.isEmpty()) {
            log.println("note: shared training returns no DL4J listener stats from the workers; "
                    + "the MTP losses and validations are still recorded");
        }
        if (workerStats) {
            listeners.addAll(workerListeners);
        }
        listeners.add(stepCount);
        listeners.add(new LossCollector(losses));
        master.setListeners(workerStats ? statsRouter : null, listeners);
        SparkComputationGraph sparkGraph = new SparkComputationGraph(spark, graph, master);
        Broadcast<TrainingBatches> batches = spark.broadcast(new TrainingBatches(data.trainingStream(),
                options.batchSize(), options.seqLen(), options.seed(), options.nd4jDataType(),
                options.documentIsolation()));

        int workers = settings.workers();
        long tokensPerStep = (long) workers * options.batchSize() * options.seqLen();
        WarmupCosineSchedule schedule = new WarmupCosineSchedule(options.learningRate(), options.warmupSteps(),
                options.steps(), options.minLrRatio());
        CheckpointStore checkpoints = new CheckpointStore(runDir, options.keepCheckpoints());
        Path lastCheckpoint = null;
        ValidationReport lastValidation = null;
        long step = 0;
        double trainSeconds = 0;
        long trainTokens = 0;
        long start = System.nanoTime();
        log.printf(Locale.ROOT, "Training %d parameters on Spark (%s, %d workers, %d steps per round); %s%n",
                graph.numParams(), settings.trainingMaster(), workers, f, data.describe());
        try (MetricsLog metrics = new MetricsLog(runDir.resolve("metrics.jsonl"), -1)) {
            long nextBatch = 0;   // every round takes the next W·F batches (parameter averaging: step·W)
            while (step < options.steps()) {
                long first = nextBatch;
                nextBatch += (long) workers * f;
                JavaRDD<MultiDataSet> round = spark.parallelize(
                                LongStream.range(first, nextBatch).boxed().toList(), workers)
                        .map(index -> batches.value().batch(index));
                losses.reset();
                stepCount.roundStartsAfter(Math.toIntExact(step));
                long t0 = System.nanoTime();
                sparkGraph.fitMultiDataSet(round);
                double seconds = (System.nanoTime() - t0) / 1e9;
                round.unpersist(false);
                trainSeconds += seconds;
                trainTokens += tokensPerStep * f;
                List<MtpLossReport> perStep = combinePerStep(losses.value(), mtp, settings, step);
                ComputationGraph current = sparkGraph.getNetwork();
                NemotronV3ForCausalLM model = NemotronV3ForCausalLM.of(config, mtp, current);
                for (MtpLossReport report : perStep) {
                    step++;
                    if (!Double.isFinite(report.totalLoss())) {
                        throw new Trainer.TrainingDivergedException("Loss is " + report.totalLoss() + " at step " + step
                                + "; training stopped. The last good checkpoint is "
                                + (lastCheckpoint != null ? lastCheckpoint : "(none written yet)") + ".");
                    }
                    double lr = schedule.valueAt((int) step - 1, 0);
                    double tokensPerSecond = tokensPerStep * f / seconds;   // the round's batches over its time
                    ObjectNode row = MetricsLog.trainRow(step, lr, report, tokensPerSecond,
                            (System.nanoTime() - start) / 1e9);
                    for (TrainingObserver observer : observers) {
                        observer.onStep(step, lr, report, tokensPerSecond);
                    }
                    boolean roundEnd = report == perStep.get(perStep.size() - 1);
                    boolean lastRound = step >= options.steps();
                    if (roundEnd && (crossed(step, perStep.size(), options.evalEvery()) || lastRound)) {
                        lastValidation = new Validator(model).evaluate(data.validation());
                        MetricsLog.addValidation(row, lastValidation);
                        for (TrainingObserver observer : observers) {
                            observer.onValidation(step, lastValidation);
                        }
                    }
                    metrics.write(row);
                    if (roundEnd && (crossed(step, perStep.size(), options.checkpointEvery()) || lastRound)) {
                        lastCheckpoint = checkpoints.save(current, step, runJson);
                    }
                }
                log.printf(Locale.ROOT, "step %d/%d  %s  (%.1f s per round)%n", step, options.steps(),
                        describe(perStep.get(perStep.size() - 1)), seconds);
            }
            MetricsChart.write(metrics.rows(), runDir.resolve("metrics.png"));
        } finally {
            batches.destroy();
        }
        Path hf = runDir.resolve("hf");
        NemotronV3ForCausalLM.of(config, mtp, sparkGraph.getNetwork())
                .save(hf, true, NemotronV3ForCausalLM.SaveOptions.defaults().withDType(saveDType));
        return new Result(step, lastValidation, lastCheckpoint, hf, (System.nanoTime() - start) / 1e9,
                trainSeconds > 0 ? trainTokens / trainSeconds : 0);
    }

    /** True if a multiple of {@code every} lies in the round that ended at {@code step}. */
    private static boolean crossed(long step, int roundSteps, int every) {
        return step / every != (step - roundSteps) / every;
    }

    /**
     * The round's losses, one report per step: the reports of that step, combined like the slices of one batch
     * (count-weighted, {@link MtpLossReport#combine}).
     * <ul>
     *   <li>Parameter averaging: each of the {@code workers} reports each of the round's steps
     *       {@code stepBefore + 1 .. stepBefore + averagingFrequency}.</li>
     *   <li>Shared training: every executor keeps one model for the whole run, which all its tasks update in turn (in
     *       local mode one model makes every update), and its iteration count is its own; the round's steps are the
     *       distinct iteration numbers reported, in order, each combined over the models that reported it.</li>
     * </ul>
     */
    static List<MtpLossReport> combinePerStep(List<WorkerLosses> reported, MtpConfig mtp, SparkSettings settings,
                                              long stepBefore) {
        Map<Long, List<MtpLossReport>> byStep = new TreeMap<>();
        for (WorkerLosses w : reported) {
            byStep.computeIfAbsent(w.step(), s -> new ArrayList<>()).add(w.report());
        }
        boolean complete;
        if (settings.shared()) {
            complete = !byStep.isEmpty();
        } else {
            complete = byStep.size() == settings.averagingFrequency();
            for (long s = stepBefore + 1; s <= stepBefore + settings.averagingFrequency(); s++) {
                complete &= byStep.getOrDefault(s, List.of()).size() == settings.workers();
            }
        }
        if (!complete) {
            StringBuilder counts = new StringBuilder();
            byStep.forEach((k, l) -> counts.append(' ').append(k).append(':').append(l.size()));
            throw new IllegalStateException("round after step " + stepBefore + ": expected "
                    + (settings.shared() ? "at least one step report"
                    : settings.workers() + " worker reports of each of steps " + (stepBefore + 1) + ".."
                    + (stepBefore + settings.averagingFrequency())) + ", got (step:reports)" + counts);
        }
        List<MtpLossReport> combined = new ArrayList<>();
        for (List<MtpLossReport> slices : byStep.values()) {
            combined.add(MtpLossReport.combine(slices, mtp.getLossNormalization()));
        }
        return combined;
    }

    private String runJson(NemotronV3Config config, MtpConfig mtp, TrainOptions options, SparkSettings settings)
            throws IOException {
        ObjectNode node = (ObjectNode) JSON.readTree(Trainer.runFileText(config, mtp, options, dataSettings));
        node.set("spark", JSON.valueToTree(settings));
        return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(node);
    }

    private static String describe(MtpLossReport losses) {
        StringBuilder s = new StringBuilder(String.format(Locale.ROOT, "loss %.3f main %.3f", losses.totalLoss(),
                losses.mainLoss()));
        for (int d = 1; d <= losses.depths(); d++) {
            s.append(String.format(Locale.ROOT, " d%d %.3f", d, losses.depthLosses()[d]));
        }
        return s.toString();
    }
}
