package org.dl4jmtp.examples.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.GradientNormalization;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.io.AtomicFiles;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossReporting;
import org.dl4jmtp.io.SafetensorsDType;
import org.dl4jmtp.model.DataParallelGraph;
import org.dl4jmtp.model.ExpertLoad;
import org.dl4jmtp.model.MtpOnlyTraining;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.learning.config.Adam;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The training loop of the {@code train} command: Adam with warm-up and cosine decay, per-layer gradient clipping,
 * progress bar, {@code metrics.jsonl} and {@code metrics.png}, validation with MTP acceptance metrics, DL4J checkpoints
 * (resumable: same data order, schedule and step count), a stop with a clear message on a NaN/infinite loss (the last
 * good checkpoint is kept), a checkpoint on Ctrl-C, and a final HF export ({@code hf/config.json},
 * {@code hf/model.safetensors}).
 *
 * <p>Run directory layout: {@code run.json} (model and training settings), {@code metrics.jsonl}, {@code metrics.png},
 * {@code checkpoints/step-NNNNNN.zip}, {@code hf/}.
 */
public final class Trainer {

    private static final ObjectMapper JSON = new ObjectMapper();
    /**
     * ND4J frees off-heap buffers that live outside workspaces (e.g. the per-depth loss report's) only when their Java
     * objects are collected; with a large, idle heap that can take hundreds of steps (measured: RSS 0.9 → 3.1 GB over
     * 200 small-preset steps without, flat with a collection every 10 steps).
     */
    private static final int GC_EVERY_STEPS = 10;
    /** Wide enough for the per-depth losses and tokens/s (the terminal width is unknown when output is piped). */
    private static final int PROGRESS_WIDTH = 200;
    static final String RUN_FILE = "run.json";

    private final Path runDir;
    private final PrintStream log;
    private final List<TrainingListener> extraListeners = new ArrayList<>();
    private final List<TrainingObserver> observers = new ArrayList<>();
    private volatile boolean stopRequested;
    private int replicas = 1;
    private org.dl4jmtp.io.SafetensorsDType saveDType;
    /** The text of run.json, also stored in every checkpoint. */
    private String runJson;
    private DataSettings dataSettings;

    public Trainer(Path runDir, PrintStream log) {
        this.runDir = runDir;
        this.log = log;
    }

    /** Extra DL4J listeners (e.g. the training UI's StatsListener). */
    public Trainer addListener(TrainingListener listener) {
        extraListeners.add(listener);
        return this;
    }

    /** Observers of the per-step losses and of each validation. */
    public Trainer addObserver(TrainingObserver observer) {
        observers.add(observer);
        return this;
    }

    /**
     * Computes each step's gradient on this many slices of the batch in parallel ({@link DataParallelGraph}): the
     * same training, faster on several cores when ND4J runs single-threaded. Not stored in the run: a resumed run
     * may use another value.
     */
    public Trainer replicas(int replicas) {
        if (replicas < 1) {
            throw new IllegalArgumentException("replicas must be >= 1, got " + replicas);
        }
        this.replicas = replicas;
        return this;
    }

    /**
     * The dtype of the final HF export ({@code hf/}): F32, BF16 or F16; null (the default) writes the source dtypes,
     * float32 for a trained model. Training checkpoints (zips) are always float32.
     */
    public Trainer saveDType(org.dl4jmtp.io.SafetensorsDType dtype) {
        NemotronV3ForCausalLM.SaveOptions.defaults().withDType(dtype); // validates
        this.saveDType = dtype;
        return this;
    }

    /** Asks the loop to checkpoint and stop after the current step. */
    public void requestStop() {
        stopRequested = true;
    }

    /** The outcome of a run. */
    public record Result(long lastStep, ValidationReport lastValidation, Path lastCheckpoint, Path hfExport,
                         double seconds, double tokensPerSecond, boolean interrupted) {
    }

    /** Starts a new run in the run directory. */
    public Result train(NemotronV3Config config, MtpConfig mtp, TrainOptions options, TrainingData data) throws IOException {
        Files.createDirectories(runDir);
        runJson = runFileText(config, mtp, options);
        AtomicFiles.writeString(runDir.resolve(RUN_FILE), runJson);
        ComputationGraph graph = newGraph(config, mtp, options);
        if (options.trainsOnlyMtp()) {
            log.println("--train-only mtp: everything outside mtp.* is frozen (no gradient, no optimizer state)");
        }
        Map<String, SafetensorsDType> sources = options.initFrom() != null
                ? PretrainedStart.load(graph, Path.of(options.initFrom()), mtp, System.err) : Map.of();
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.of(config, mtp, parallel(graph));
        model.rememberSourceDTypes(sources);
        return loop(model, options, data, 0, false);
    }

    /**
     * The graph a new run trains: initialised from the seed, with the run's runtime, dtype, Adam with warm-up and
     * cosine decay, the per-layer gradient clip and, with {@code --train-only mtp}, everything outside {@code mtp.*}
     * frozen (also the Spark trainer's, so both train the same model).
     */
    public static ComputationGraph newGraph(NemotronV3Config config, MtpConfig mtp, TrainOptions options) {
        // TrainingData labels carry document ids (channel 1): MTP targets never cross a document boundary
        ComputationGraphConfiguration conf = NemotronV3ForCausalLM.graphBuilder(config, mtp, true)
                .dataType(options.nd4jDataType())
                .seed(options.seed())
                .runtime(options.layerRuntime())
                .updater(new Adam(schedule(options)))
                .gradientNormalization(options.gradientClip() > 0 ? GradientNormalization.ClipL2PerLayer
                        : GradientNormalization.None, options.gradientClip() > 0 ? options.gradientClip() : 1.0)
                .buildConfiguration();
        if (options.trainsOnlyMtp()) {
            MtpOnlyTraining.freezeAllButMtp(conf);
        }
        ComputationGraph graph = new ComputationGraph(conf);
        graph.init();
        return graph;
    }

    /** Continues the run in the run directory from its newest complete checkpoint ({@link #prepareResume}). */
    public Result resume(TrainingData data) throws IOException {
        return resume(prepareResume(), data);
    }

    /**
     * Continues the run from {@code point}: from its checkpoint with the same data order, schedule and step count,
     * or, when no complete checkpoint was written yet, from step 0 with the run's settings.
     */
    public Result resume(ResumePoint point, TrainingData data) throws IOException {
        RunFile run = point.run();
        if (point.checkpoint() == null) {
            log.println("No complete checkpoint in " + runDir.resolve("checkpoints")
                    + " yet: starting the run again from step 0 with the settings in " + RUN_FILE);
            dataSettings = run.data();
            return train(run.config(), run.mtp(), run.options(), data);
        }
        log.println("Resuming " + runDir + " from " + point.checkpoint().getFileName() + " (step " + point.step() + ")");
        ComputationGraph graph;
        try {
            graph = CheckpointStore.restore(point.checkpoint());
        } catch (IOException | RuntimeException e) {
            throw new IOException("cannot restore checkpoint " + point.checkpoint() + ": " + e.getMessage()
                    + " (move it aside to resume from the previous one)", e);
        }
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.of(run.config(), run.mtp(), parallel(graph));
        if (run.options().initFrom() != null) {
            model.rememberSourceDTypes(PretrainedStart.sourceDTypes(Path.of(run.options().initFrom()), log));
        }
        return loop(model, run.options(), data, point.step(), true);
    }

    /**
     * Where {@code train --resume} continues: the run's settings and its newest complete checkpoint (null when the run
     * was stopped before its first one). Removes temp files that a killed process left mid-write, sets unreadable
     * checkpoints aside (falling back to the previous one) and restores a missing or damaged {@code run.json} from the
     * copy inside the checkpoint, each with a line on the log.
     *
     * @throws IllegalArgumentException if {@code runDir} is not a run directory, or its settings cannot be recovered
     */
    public ResumePoint prepareResume() throws IOException {
        if (!Files.isDirectory(runDir)) {
            throw new IllegalArgumentException("--resume: no run directory " + runDir);
        }
        CheckpointStore store = new CheckpointStore(runDir, 1);
        for (Path dir : List.of(runDir, runDir.resolve("hf"), store.directory())) {
            for (Path temp : AtomicFiles.removeStaleTempFiles(dir)) {
                log.println("note: removed " + temp + " (a write that was cut off)");
            }
        }
        Path checkpoint = store.latestReadable(log).orElse(null);
        RunFile run = readRunFile(checkpoint);
        return new ResumePoint(run, checkpoint, checkpoint == null ? 0 : CheckpointStore.stepOf(checkpoint));
    }

    /** What {@link #prepareResume} found: the settings, the checkpoint (or null) and its step (0 without one). */
    public record ResumePoint(RunFile run, Path checkpoint, long step) {
    }

    private ComputationGraph parallel(ComputationGraph graph) {
        return replicas > 1 ? DataParallelGraph.of(graph, replicas) : graph;
    }

    /** The settings a run directory was started with. */
    public RunFile readRunFile() throws IOException {
        return readRunFile(null);
    }

    /**
     * The settings in {@code run.json}; when it is missing or damaged, those stored in {@code checkpoint} (if given),
     * written back to {@code run.json}.
     */
    private RunFile readRunFile(Path checkpoint) throws IOException {
        Path file = runDir.resolve(RUN_FILE);
        String problem;
        if (Files.exists(file)) {
            String text = Files.readString(file);
            try {
                RunFile run = parseRunFile(text);
                runJson = text;
                return run;
            } catch (IOException | RuntimeException e) {
                problem = file + " is damaged (" + firstLine(e.getMessage()) + ")";
            }
        } else {
            problem = "no " + RUN_FILE + " in " + runDir;
        }
        java.util.Optional<String> stored = checkpoint != null ? CheckpointStore.runJson(checkpoint)
                : java.util.Optional.empty();
        if (stored.isEmpty()) {
            throw new IllegalArgumentException("cannot resume " + runDir + ": " + problem
                    + (checkpoint != null ? " and " + checkpoint.getFileName() + " holds no copy of the run settings"
                    : " and there is no complete checkpoint holding a copy of them")
                    + " (is it a run directory written by train?)");
        }
        RunFile run = parseRunFile(stored.get());
        runJson = stored.get();
        AtomicFiles.writeString(file, runJson);
        log.println("warning: " + problem + "; restored it from the copy in " + checkpoint.getFileName());
        return run;
    }

    private static RunFile parseRunFile(String text) throws IOException {
        ObjectNode node = (ObjectNode) JSON.readTree(text);
        NemotronV3Config config = NemotronV3Config.fromJsonString(node.get("config").toString());
        MtpConfig mtp = JSON.treeToValue(node.get("mtp"), MtpSettings.class).toConfig();
        TrainOptions options = JSON.treeToValue(node.get("training"), TrainOptions.class);
        if (options == null) {
            throw new IOException("no training settings");
        }
        DataSettings data = node.hasNonNull("data") ? JSON.treeToValue(node.get("data"), DataSettings.class) : null;
        return new RunFile(config, mtp, options, data);
    }

    private static String firstLine(String message) {
        return message == null ? "unreadable" : message.lines().findFirst().orElse("unreadable");
    }

    /** Contents of {@code run.json}; {@code data} is null for runs that did not record it. */
    public record RunFile(NemotronV3Config config, MtpConfig mtp, TrainOptions options, DataSettings data) {
    }

    /**
     * Where a run's data comes from, recorded so that {@code --resume} trains on the same tokens.
     *
     * @param corpus             the corpus file or folder (absolute), or null for the default corpus
     * @param tokenizer          the tokenizer.json (absolute), or null for bytes
     * @param validationFraction the held-out tail of every document
     */
    public record DataSettings(String corpus, String tokenizer, double validationFraction) {
    }

    /** Records the data settings in {@code run.json} when {@link #train} starts a run. */
    public Trainer dataSettings(DataSettings settings) {
        this.dataSettings = settings;
        return this;
    }

    /** The MTP training settings as stored in {@code run.json}. */
    record MtpSettings(int numLayers, String layerPattern, double lossScalingFactor, boolean useRepeatedLayer,
                       String lossNormalization) {
        static MtpSettings of(MtpConfig mtp) {
            return new MtpSettings(mtp.getNumLayers(), mtp.getLayerPattern(), mtp.getLossScalingFactor(),
                    mtp.isUseRepeatedLayer(), mtp.getLossNormalization().name());
        }

        MtpConfig toConfig() {
            return MtpConfig.builder().numLayers(numLayers).layerPattern(layerPattern)
                    .lossScalingFactor(lossScalingFactor).useRepeatedLayer(useRepeatedLayer)
                    .lossNormalization(org.dl4jmtp.config.MtpLossNormalization.valueOf(lossNormalization)).build();
        }
    }

    private String runFileText(NemotronV3Config config, MtpConfig mtp, TrainOptions options) throws IOException {
        return runFileText(config, mtp, options, dataSettings);
    }

    /** The text of {@code run.json} (also stored in every checkpoint) for these settings; {@code data} may be null. */
    public static String runFileText(NemotronV3Config config, MtpConfig mtp, TrainOptions options,
                                     DataSettings dataSettings) throws IOException {
        ObjectNode node = JSON.createObjectNode();
        node.set("config", JSON.readTree(config.toJson()));
        node.set("mtp", JSON.valueToTree(MtpSettings.of(mtp)));
        node.set("training", JSON.valueToTree(options));
        if (dataSettings != null) {
            node.set("data", JSON.valueToTree(dataSettings));
        }
        return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(node);
    }

    private Result loop(NemotronV3ForCausalLM model, TrainOptions options, TrainingData data, long startStep,
                        boolean resumed) throws IOException {
        ComputationGraph graph = model.graph();
        graph.setListeners(extraListeners);
        CheckpointStore checkpoints = new CheckpointStore(runDir, options.keepCheckpoints());
        Validator validator = new Validator(model);
        MultiDataSetIterator batches = data.training(startStep);
        long tokensPerStep = (long) options.batchSize() * options.seqLen();
        long step = startStep;
        Path lastCheckpoint = checkpoints.latest().orElse(null);
        ValidationReport lastValidation = null;
        WarmupCosineSchedule schedule = schedule(options);
        double trainSeconds = 0;
        long trainTokens = 0;
        long start = System.nanoTime();
        CountDownLatch stopped = new CountDownLatch(1);
        Thread onInterrupt = new Thread(() -> {
            requestStop();
            try {
                stopped.await(120, TimeUnit.SECONDS);   // let the loop write its checkpoint before the JVM exits
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }, "dl4j-mtp-sigint-checkpoint");
        Runtime.getRuntime().addShutdownHook(onInterrupt);
        log.println((resumed ? "Continuing" : "Training") + " " + graph.numParams() + " parameters; " + data.describe());
        try (MetricsLog metrics = new MetricsLog(runDir.resolve("metrics.jsonl"), resumed ? startStep : -1);
             ProgressBar bar = new ProgressBarBuilder().setTaskName("train").setInitialMax(options.steps())
                     .setStyle(ProgressBarStyle.ASCII).setConsumer(new me.tongfei.progressbar.ConsoleProgressBarConsumer(log, PROGRESS_WIDTH))
                     .setUpdateIntervalMillis(500).startsFrom(startStep, java.time.Duration.ZERO).build()) {
            while (step < options.steps() && !stopRequested) {
                MultiDataSet batch = batches.next();
                long t0 = System.nanoTime();
                ExpertLoad.discard(graph);
                graph.fit(batch);
                Map<String, long[]> expertCounts = ExpertLoad.drain(graph);
                if (options.routerBiasUpdateRate() > 0) {
                    // after the optimizer step; the bias gets no gradient, so the step never moves it
                    ExpertLoad.balance(graph, expertCounts, options.routerBiasUpdateRate());
                }
                double seconds = (System.nanoTime() - t0) / 1e9;
                step++;
                trainSeconds += seconds;
                trainTokens += tokensPerStep;
                MtpLossReport losses = ((MtpLossReporting) graph.getLayer(GraphNames.LM_HEAD)).lastReport();
                double score = graph.score();
                if (!Double.isFinite(score) || losses == null || !Double.isFinite(losses.totalLoss())) {
                    throw new TrainingDivergedException("Loss is " + score + " at step " + step
                            + "; training stopped. The last good checkpoint is "
                            + (lastCheckpoint != null ? lastCheckpoint : "(none written yet)")
                            + ". Lower --lr or raise --warmup, then --resume from it.");
                }
                double lr = schedule.valueAt((int) step - 1, 0);   // DL4J's iteration count during update `step`
                ObjectNode row = MetricsLog.trainRow(step, lr, losses, tokensPerStep / seconds,
                        (System.nanoTime() - start) / 1e9);
                for (TrainingObserver observer : observers) {
                    observer.onStep(step, lr, losses, tokensPerStep / seconds);
                }
                bar.stepTo(step);
                bar.setExtraMessage(progressMessage(losses, tokensPerStep / seconds));
                boolean last = step == options.steps() || stopRequested;
                if (step % options.evalEvery() == 0 || last) {
                    lastValidation = validator.evaluate(data.validation());
                    MetricsLog.addValidation(row, lastValidation);
                    for (TrainingObserver observer : observers) {
                        observer.onValidation(step, lastValidation);
                    }
                }
                metrics.write(row);
                if (step % options.checkpointEvery() == 0 || last) {
                    lastCheckpoint = checkpoints.save(graph, step, runJson);
                }
                if (step % GC_EVERY_STEPS == 0) {
                    System.gc();
                }
            }
            if (stopRequested && (lastCheckpoint == null || CheckpointStore.stepOf(lastCheckpoint) != step)) {
                lastCheckpoint = checkpoints.save(graph, step, runJson);
            }
            try {
                MetricsChart.write(metrics.rows(), runDir.resolve("metrics.png"));
            } catch (IllegalStateException shuttingDown) {
                // Ctrl-C: the image writer cannot start during JVM shutdown; metrics.jsonl and the checkpoint are written
                log.println("metrics.png not updated (" + shuttingDown.getMessage() + ")");
            }
        } finally {
            stopped.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(onInterrupt);
            } catch (IllegalStateException shuttingDown) {
                // the JVM is exiting because of Ctrl-C: the hook is waiting for us, nothing to remove
            }
        }
        Path hf = null;
        boolean interrupted = stopRequested && step < options.steps();
        if (!interrupted) {
            hf = runDir.resolve("hf");
            model.save(hf, true, NemotronV3ForCausalLM.SaveOptions.defaults().withDType(saveDType));
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        return new Result(step, lastValidation, lastCheckpoint, hf, seconds,
                trainSeconds > 0 ? trainTokens / trainSeconds : 0, interrupted);
    }

    private static WarmupCosineSchedule schedule(TrainOptions options) {
        return new WarmupCosineSchedule(options.learningRate(), options.warmupSteps(), options.steps(), options.minLrRatio());
    }

    private static String progressMessage(MtpLossReport losses, double tokensPerSecond) {
        StringBuilder s = new StringBuilder(String.format("loss %.3f main %.3f", losses.totalLoss(), losses.mainLoss()));
        for (int d = 1; d <= losses.depths(); d++) {
            s.append(String.format(" d%d %.3f", d, losses.depthLosses()[d]));
        }
        return s.append(String.format(" %.0f tok/s", tokensPerSecond)).toString();
    }

    /** A NaN or infinite loss: training cannot continue from this state. */
    public static final class TrainingDivergedException extends RuntimeException {
        public TrainingDivergedException(String message) {
            super(message);
        }
    }
}
