package org.dl4jmtp.examples.train;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.CheckpointSupport;
import org.dl4jmtp.examples.LayerRuntimeOption;
import org.dl4jmtp.examples.UserException;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.examples.data.CorpusUnavailableException;
import org.dl4jmtp.examples.data.HuggingFaceJsonTokenizer;
import org.dl4jmtp.examples.data.Tokenizer;
import org.dl4jmtp.examples.launch.IntraOpThreads;
import org.dl4jmtp.examples.launch.ReplicaPolicy;
import org.dl4jmtp.examples.ui.TrainingUi;
import org.dl4jmtp.ui.MtpDashboard;
import org.dl4jmtp.ui.StatsRewind;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code train}: trains a NemotronV3 model with MTP heads on real text (default: the Jargon File from Debian's
 * {@code jargon-text} package) and writes metrics, a chart, DL4J checkpoints and an HF export into the run directory.
 */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Train a NemotronV3 + MTP model on text (byte tokenizer by default).")
public final class TrainCommand implements Callable<Integer> {

    /**
     * Default step of the expert-bias balancing. Megatron's default is 1e-3 for runs of many thousand steps; the
     * tiny 200-step run needs a larger step for the biases to reach balance in time (docs/training.md).
     */
    static final double DEFAULT_ROUTER_BIAS_UPDATE_RATE = 1e-2;

    @Spec
    CommandSpec spec;

    @Option(names = "--preset", defaultValue = "tiny", description = "Model preset: tiny (default) or small.")
    String preset;

    @Option(names = "--config", paramLabel = "config.json", description = "An HF config.json instead of a preset.")
    Path config;

    @Option(names = "--corpus", paramLabel = "PATH",
            description = "A UTF-8 text file or a folder of .txt files (default: the Jargon File, cached in --data-dir).")
    Path corpus;

    @Option(names = "--data-dir", defaultValue = "data", description = "Cache for the default corpus (default: data).")
    Path dataDir;

    @Option(names = "--tokenizer", paramLabel = "tokenizer.json",
            description = "A HuggingFace tokenizer.json (default: bytes, vocabulary 256).")
    Path tokenizerJson;

    @Option(names = "--out", defaultValue = "runs/tiny", description = "Run directory (default: runs/tiny).")
    Path out;

    @Option(names = "--resume", paramLabel = "DIR", description = "Continue the run in DIR from its last complete"
            + " checkpoint, on the same data (its corpus, tokenizer and validation split are in DIR/run.json).")
    Path resume;

    @Option(names = "--mtp-pattern", paramLabel = "PATTERN", description = "Sublayer pattern of one MTP depth, e.g. *E"
            + " (default: the config's mtp_hybrid_override_pattern; needed with --init-from a checkpoint without MTP).")
    String mtpPattern;

    @Option(names = "--router-bias-update-rate", paramLabel = "R", defaultValue = "" + DEFAULT_ROUTER_BIAS_UPDATE_RATE,
            description = "Aux-loss-free MoE load balancing: after every step each expert's e_score_correction_bias"
                    + " moves by R toward balance (up when under-loaded); 0 = off (default: ${DEFAULT-VALUE}).")
    double routerBiasUpdateRate;

    @Option(names = "--init-from", paramLabel = "DIR", description = "Start from an HF checkpoint directory (config.json"
            + " + safetensors, with or without mtp.*) instead of a fresh model; its config is the model's.")
    Path initFrom;

    @Option(names = "--train-only", paramLabel = "PART", defaultValue = TrainOptions.TRAIN_ALL,
            description = "all (default) or mtp: train only the MTP depths; everything outside mtp.* stays frozen"
                    + " (bit-identical in the export, no gradient, no optimizer state).")
    String trainOnly;

    @Option(names = "--replicas", description = "Compute each step on this many slices of the batch in parallel"
            + " threads (exact; default: one per core, at most the batch size, for models large enough to gain;"
            + " else 1).") Integer replicas;
    @CommandLine.Mixin
    TrainingRunOptions run = new TrainingRunOptions();

    @CommandLine.Mixin
    LayerRuntimeOption layerRuntime = new LayerRuntimeOption();
    @Option(names = "--ui", description = "Watch training in the DL4J UI with the MTP page (stats in <run dir>/stats.dl4j).")
    boolean ui;
    @Option(names = "--ui-port", paramLabel = "P", description = "UI port (implies --ui; default: 9000; the next free port if busy).")
    Integer uiPort;

    @Override
    public Integer call() throws IOException {
        System.setProperty("java.awt.headless", "true");
        PrintStream log = System.out;
        org.dl4jmtp.io.SafetensorsDType exportDType = org.dl4jmtp.examples.SaveSettings.dtype(run.saveDType());
        Trainer resumed = resume != null ? new Trainer(resume, log) : null;
        Trainer.ResumePoint point = resumed != null ? resumed.prepareResume() : null;
        if (point != null) {
            refuseWithResume("--init-from", "--train-only", "--router-bias-update-rate", "--mtp-pattern");
            useDataOf(point.run().data());
            resumed.replicas(replicasFor(point.run().config(), point.run().mtp(), point.run().options()))
                    .saveDType(exportDType);
        }
        // a new run's settings are checked before the corpus is read (or the default one fetched)
        NemotronV3Config model = point == null ? modelConfig() : null;
        MtpConfig mtp = point == null ? mtpConfig(model) : null;
        TrainOptions options = point == null ? trainOptions() : null;
        Tokenizer tokenizer = tokenizerJson != null ? new HuggingFaceJsonTokenizer(tokenizerJson) : new ByteTokenizer();
        Corpus text = loadCorpus();
        Trainer.Result result;
        CorpusTrainingData data;
        if (point != null) {
            // the UI's history goes back to the checkpoint too: the steps after it are computed again
            StatsRewind.keepThroughStep(resume.resolve(MtpDashboard.STATS_FILE), point.step(), log);
            data = new CorpusTrainingData(text, tokenizer, run.validationFraction(), point.run().options());
            result = reportingDivergence(resumed, () -> resumed.resume(point, data));
        } else {
            if (initFrom != null && model.getVocabSize() != tokenizer.vocabSize()) {
                throw new UserException("--init-from " + initFrom + ": the checkpoint's vocab_size " + model.getVocabSize()
                        + " differs from the tokenizer's " + tokenizer.vocabSize() + " (" + tokenizer.name()
                        + "): a pretrained model trains only with a tokenizer of its own vocabulary size");
            }
            if (model.getVocabSize() < tokenizer.vocabSize()) {
                throw new UserException("The model's vocab_size " + model.getVocabSize() + " is smaller than the tokenizer's "
                        + tokenizer.vocabSize() + " (" + tokenizer.name() + ")");
            }
            Trainer trainer = new Trainer(out, log).replicas(replicasFor(model, mtp, options)).saveDType(exportDType).dataSettings(new Trainer.DataSettings(
                    absolute(corpus), absolute(tokenizerJson), run.validationFraction()));
            data = new CorpusTrainingData(text, tokenizer, run.validationFraction(), options);
            result = reportingDivergence(trainer, () -> trainer.train(model, mtp, options, data));
        }
        printSummary(log, result, data);
        return 0;
    }

    /** The replicas, with the threads inside each op set to match ({@link IntraOpThreads}). */
    private int replicasFor(NemotronV3Config model, MtpConfig mtp, TrainOptions options) {
        int count = replicas != null ? replicas
                : ReplicaPolicy.defaultReplicas(model, mtp, options.batchSize(), options.seqLen());
        IntraOpThreads.applyIfAuto(ReplicaPolicy.threadsPerReplica(model, mtp, options.batchSize(), options.seqLen(),
                count));
        return count;
    }

    private NemotronV3Config modelConfig() throws IOException {
        NemotronV3Config model;
        if (initFrom != null) {
            CommandLine.ParseResult given = spec.commandLine().getParseResult();
            if (config != null || given.hasMatchedOption("--preset")) {
                throw new UserException("--init-from takes the model's config from " + initFrom.resolve("config.json")
                        + ": leave out " + (config != null ? "--config" : "--preset"));
            }
            if (!Files.isDirectory(initFrom)) {
                throw new UserException("--init-from " + initFrom + ": no such checkpoint directory");
            }
            model = CheckpointSupport.readConfigFile(initFrom.resolve("config.json"));
        } else {
            model = config != null ? CheckpointSupport.readConfigFile(config) : Presets.byName(preset);
        }
        if (mtpPattern != null) {
            try {
                model.mtpHybridOverridePattern(mtpPattern);
            } catch (IllegalArgumentException e) {
                throw new UserException("--mtp-pattern " + mtpPattern + ": " + e.getMessage(), e);
            }
        }
        return model;
    }

    private MtpConfig mtpConfig(NemotronV3Config model) {
        MtpConfig mtp;
        try {
            mtp = run.mtpConfig(model);
            mtp.validate();
        } catch (IllegalArgumentException e) {
            throw new UserException(e.getMessage() + (initFrom != null && mtpPattern == null
                    ? " (give the MTP sublayer pattern with --mtp-pattern, e.g. *E)" : ""), e);
        }
        if (TrainOptions.TRAIN_MTP.equalsIgnoreCase(trainOnly.trim()) && !mtp.enabled()) {
            throw new UserException("--train-only mtp: the model has no MTP depths to train (give --mtp-depths D"
                    + " and, for a checkpoint without MTP, --mtp-pattern)");
        }
        return mtp;
    }

    private void refuseWithResume(String... options) {
        CommandLine.ParseResult given = spec.commandLine().getParseResult();
        for (String option : options) {
            if (given.hasMatchedOption(option)) {
                throw new UserException(option + " cannot be combined with --resume: a resumed run continues with the"
                        + " settings in " + resume.resolve(Trainer.RUN_FILE));
            }
        }
    }

    private TrainOptions trainOptions() {
        TrainOptions options = run.trainOptions(layerRuntime.get(spec.commandLine()).cliName());
        try {
            return options.withPretraining(routerBiasUpdateRate, absolute(initFrom), trainOnly);
        } catch (IllegalArgumentException e) {
            throw new UserException(e.getMessage(), e);
        }
    }

    /**
     * A resumed run trains on the data it started with: the corpus, tokenizer and validation split recorded in its
     * run.json. Giving a different one on the command line is an error rather than a silently different run.
     */
    private void useDataOf(Trainer.DataSettings recorded) {
        if (recorded == null) {
            return;   // a run from before the data settings were recorded: the command line's, as then
        }
        CommandLine.ParseResult given = spec.commandLine().getParseResult();
        requireSame(given.hasMatchedOption("--corpus"), "--corpus", absolute(corpus), recorded.corpus());
        requireSame(given.hasMatchedOption("--tokenizer"), "--tokenizer", absolute(tokenizerJson), recorded.tokenizer());
        requireSame(given.hasMatchedOption("--validation-fraction"), "--validation-fraction",
                String.valueOf(run.validationFraction()), String.valueOf(recorded.validationFraction()));
        corpus = recorded.corpus() != null ? Path.of(recorded.corpus()) : null;
        tokenizerJson = recorded.tokenizer() != null ? Path.of(recorded.tokenizer()) : null;
        run.validationFraction(recorded.validationFraction());
    }

    private void requireSame(boolean given, String option, String value, String recorded) {
        if (given && !java.util.Objects.equals(value, recorded)) {
            throw new UserException(option + " " + value + " differs from the run's own ("
                    + (recorded != null ? recorded : "the default") + ", in " + resume.resolve(Trainer.RUN_FILE)
                    + "): a resumed run continues on the data it started with; leave " + option + " out");
        }
    }

    private static String absolute(Path path) {
        return path == null ? null : path.toAbsolutePath().normalize().toString();
    }

    private Corpus loadCorpus() {
        if (corpus != null) {
            return Corpus.fromPath(corpus);
        }
        try {
            return Corpus.jargonFile(dataDir);
        } catch (CorpusUnavailableException e) {
            throw new UserException(e.getMessage(), e);
        }
    }

    private interface Run {
        Trainer.Result run() throws IOException;
    }

    private Trainer.Result reportingDivergence(Trainer trainer, Run run) throws IOException {
        try (TrainingUi dashboard = ui || uiPort != null ? TrainingUi.start(trainer, resume != null ? resume : out, uiPort, System.out) : null) {
            return run.run();
        } catch (Trainer.TrainingDivergedException e) {
            throw new UserException(e.getMessage(), e);
        }
    }

    private void printSummary(PrintStream log, Trainer.Result result, CorpusTrainingData data) throws IOException {
        Path dir = resume != null ? resume : out;
        log.println();
        log.printf(Locale.ROOT, "%s at step %d after %.0f s (%.0f training tokens/s)%n",
                result.interrupted() ? "Interrupted" : "Finished", result.lastStep(), result.seconds(), result.tokensPerSecond());
        ValidationReport v = result.lastValidation();
        if (v != null) {
            log.printf(Locale.ROOT, "validation: main loss %.4f nats/token (perplexity %.2f) vs unigram entropy %.4f%n",
                    v.mainLoss(), v.perplexity(), data.unigramEntropyNats());
            for (int d = 1; d < v.lossPerToken().length; d++) {
                log.printf(Locale.ROOT, "  MTP depth %d: loss %.4f, top-1 accuracy %.3f vs labels, %.3f vs main head%n",
                        d, v.lossPerToken()[d], v.accuracyVsLabels()[d], v.accuracyVsMain()[d]);
            }
            log.printf(Locale.ROOT, "  simulated acceptance length %.3f tokens per verification step%n", v.simulatedAcceptLength());
        }
        log.println("outputs in " + dir.toAbsolutePath() + ":");
        log.println("  metrics.jsonl, metrics.png, run.json");
        log.println("  checkpoints/ (latest " + (result.lastCheckpoint() != null ? result.lastCheckpoint().getFileName() : "none") + ")");
        if (result.hfExport() != null && Files.isDirectory(result.hfExport())) {
            log.println("  hf/ (config.json + model.safetensors)");
        }
    }
}
