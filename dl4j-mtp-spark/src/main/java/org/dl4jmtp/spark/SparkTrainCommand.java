package org.dl4jmtp.spark;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.core.storage.StatsStorage;
import org.deeplearning4j.ui.model.stats.StatsListener;
import org.deeplearning4j.ui.model.storage.FileStatsStorage;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.CheckpointSupport;
import org.dl4jmtp.examples.LayerRuntimeOption;
import org.dl4jmtp.examples.SaveSettings;
import org.dl4jmtp.examples.UserException;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.examples.data.HuggingFaceJsonTokenizer;
import org.dl4jmtp.examples.data.Tokenizer;
import org.dl4jmtp.examples.train.CorpusTrainingData;
import org.dl4jmtp.examples.train.Presets;
import org.dl4jmtp.examples.train.TrainOptions;
import org.dl4jmtp.examples.train.Trainer;
import org.dl4jmtp.examples.train.TrainingRunOptions;
import org.dl4jmtp.examples.ui.MtpUiObserver;
import org.dl4jmtp.ui.MtpDashboard;
import org.dl4jmtp.ui.MtpStatsRecorder;
import org.dl4jmtp.ui.MtpUiServer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Callable;

/**
 * The Spark application: {@code spark-submit --class org.dl4jmtp.spark.SparkTrainCommand dl4j-mtp-spark.jar ...}
 * trains like {@code train} (same model options, data pipeline, schedule and run directory) with DL4J's
 * SparkComputationGraph. The master, executors and memory come from spark-submit.
 */
@Command(name = "dl4j-mtp-spark", mixinStandardHelpOptions = true,
        description = "Train a NemotronV3 + MTP model on Apache Spark (run it with spark-submit).")
public final class SparkTrainCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--preset", defaultValue = "tiny", description = "Model preset: tiny (default) or small.")
    String preset;

    @Option(names = "--config", paramLabel = "config.json", description = "An HF config.json instead of a preset"
            + " (a path on the driver).")
    Path config;

    @Option(names = "--corpus", required = true, paramLabel = "URI", description = "A UTF-8 text file or a directory"
            + " of .txt files on any Hadoop file system (hdfs://, s3a://, file://; no scheme: Hadoop's default).")
    String corpus;

    @Option(names = "--tokenizer", paramLabel = "URI",
            description = "A HuggingFace tokenizer.json, local or on a Hadoop file system (default: bytes).")
    String tokenizerJson;

    @Option(names = "--out", defaultValue = "runs/spark", description = "Run directory on the driver (default: runs/spark).")
    Path out;

    @CommandLine.Mixin
    TrainingRunOptions run = new TrainingRunOptions();
    @CommandLine.Mixin
    LayerRuntimeOption layerRuntime = new LayerRuntimeOption();

    @Option(names = "--training-master", defaultValue = SparkSettings.PARAMETER_AVERAGING,
            description = "parameter-averaging (default) or shared (gradient sharing through DL4J's parameter server).")
    String trainingMaster;
    @Option(names = "--workers", description = "Parallel workers (default: Spark's default parallelism, the total"
            + " executor cores).") Integer workers;
    @Option(names = "--averaging-frequency", defaultValue = "5", description = "Steps of each worker between two"
            + " parameter averagings (shared: per Spark job); default 5. --steps and --batch-size count per worker;"
            + " --steps must be a multiple of this, and validation runs at the end of the round that reaches a multiple"
            + " of --eval-every.") int averagingFrequency;
    @Option(names = "--threshold", defaultValue = "1e-3", description = "shared: initial threshold of the adaptive"
            + " gradient encoding (default 1e-3).") double threshold;
    @Option(names = "--unicast-port", defaultValue = "40123", description = "shared: parameter server port on every"
            + " node (default 40123).") int unicastPort;
    @Option(names = "--controller-address", description = "shared: address of the coordinating node (default:"
            + " DL4J picks the driver's).") String controllerAddress;
    @Option(names = "--network-mask", description = "shared: the cluster's network, e.g. 10.0.0.0/16.") String networkMask;

    @Option(names = "--ui", description = "Also serve the DL4J training UI with the MTP page from the driver (the stats"
            + " are always written to <out>/stats.dl4j).") boolean ui;
    @Option(names = "--ui-port", paramLabel = "P", description = "UI port (implies --ui; default 9000).") Integer uiPort;

    /** The Spark context to use instead of creating one from spark-submit's settings (tests). */
    private JavaSparkContext given;

    SparkTrainCommand() {
    }

    SparkTrainCommand(JavaSparkContext spark) {
        this.given = spark;
    }

    public static void main(String[] args) {
        int code = commandLine(new SparkTrainCommand()).execute(args);
        System.exit(code);
    }

    static CommandLine commandLine(SparkTrainCommand command) {
        CommandLine cl = new CommandLine(command);
        cl.setExecutionExceptionHandler((ex, line, parseResult) -> {
            if (ex instanceof UserException || ex instanceof IllegalArgumentException) {
                line.getErr().println("dl4j-mtp-spark: " + ex.getMessage());
                return 2;
            }
            throw ex;
        });
        return cl;
    }

    @Override
    public Integer call() throws IOException {
        System.setProperty("java.awt.headless", "true");
        PrintStream log = System.out;
        NemotronV3Config model = config != null ? CheckpointSupport.readConfigFile(config) : Presets.byName(preset);
        MtpConfig mtp = run.mtpConfig(model);
        mtp.validate();
        TrainOptions options = trainOptions();
        JavaSparkContext spark = given != null ? given
                : new JavaSparkContext(new SparkConf().setAppName("dl4j-mtp-spark " + out.getFileName()));
        try {
            SparkSettings settings = new SparkSettings(trainingMaster,
                    workers != null ? workers : spark.defaultParallelism(), averagingFrequency, threshold, unicastPort,
                    controllerAddress, networkMask);
            Configuration hadoop = spark.hadoopConfiguration();
            Tokenizer tokenizer = tokenizerJson != null ? new HuggingFaceJsonTokenizer(localCopy(tokenizerJson, hadoop))
                    : new ByteTokenizer();
            if (model.getVocabSize() < tokenizer.vocabSize()) {
                throw new UserException("The model's vocab_size " + model.getVocabSize() + " is smaller than the"
                        + " tokenizer's " + tokenizer.vocabSize() + " (" + tokenizer.name() + ")");
            }
            Corpus text = HadoopCorpus.read(corpus, hadoop);
            CorpusTrainingData data = new CorpusTrainingData(text, tokenizer, run.validationFraction(), options);
            Files.createDirectories(out);
            StatsStorage stats = new FileStatsStorage(out.resolve(MtpDashboard.STATS_FILE).toFile());
            try (MtpUiServer server = ui || uiPort != null ? MtpUiServer.start(uiPort != null ? uiPort
                    : MtpUiServer.defaultPort(), log) : null) {
                if (server != null) {
                    server.attach(stats);
                    log.println("Training UI: " + server.mtpUrl());
                }
                String session = "dl4j-mtp-spark-" + UUID.randomUUID();
                MtpStatsRecorder recorder = new MtpStatsRecorder(stats, session);
                String description = String.format(Locale.ROOT, "Spark %s, %d workers × batch %d × %d tokens,"
                                + " MTP D=%d ('%s', λ %s), %d steps", settings.trainingMaster(), settings.workers(),
                        options.batchSize(), options.seqLen(), mtp.getNumLayers(), mtp.getLayerPattern(), mtp.getLossScalingFactor(),
                        options.steps());
                SparkTrainer trainer = new SparkTrainer(spark, out, log)
                        .saveDType(SaveSettings.dtype(run.saveDType()))
                        .dataSettings(new Trainer.DataSettings(corpus, tokenizerJson, run.validationFraction()))
                        .addObserver(new MtpUiObserver(recorder, () -> description))
                        .workerListeners(stats, List.of(new StatsListener(null, null, null, session, null)));
                SparkTrainer.Result result;
                try {
                    result = trainer.train(model, mtp, options, data, settings);
                } catch (Trainer.TrainingDivergedException e) {
                    throw new UserException(e.getMessage(), e);
                }
                log.printf(Locale.ROOT, "Finished at step %d after %.0f s (%.0f training tokens/s over all workers)%n",
                        result.lastStep(), result.seconds(), result.tokensPerSecond());
                if (result.lastValidation() != null) {
                    log.printf(Locale.ROOT, "validation: main loss %.4f nats/token (perplexity %.2f)%n",
                            result.lastValidation().mainLoss(), result.lastValidation().perplexity());
                }
                log.println("outputs in " + out.toAbsolutePath() + ": run.json, metrics.jsonl, metrics.png, stats.dl4j,"
                        + " checkpoints/, hf/");
            } finally {
                stats.close();
            }
        } finally {
            if (given == null) {
                spark.stop();
            }
        }
        return 0;
    }

    private TrainOptions trainOptions() {
        return run.trainOptions(layerRuntime.get(spec.commandLine()).cliName());
    }

    /** A tokenizer.json on the driver's disk: the file itself, or a temp copy of one on a Hadoop file system. */
    private static Path localCopy(String location, Configuration hadoop) throws IOException {
        Path local = Path.of(location);
        if (Files.isRegularFile(local)) {
            return local;
        }
        org.apache.hadoop.fs.Path remote = new org.apache.hadoop.fs.Path(location);
        Path copy = Files.createTempFile("dl4j-mtp-tokenizer", ".json");
        copy.toFile().deleteOnExit();
        try (InputStream in = remote.getFileSystem(hadoop).open(remote)) {
            Files.copy(in, copy, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        return copy;
    }
}
