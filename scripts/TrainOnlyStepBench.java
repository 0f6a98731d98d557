import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.GradientNormalization;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.examples.train.CorpusTrainingData;
import org.dl4jmtp.examples.train.TrainOptions;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.model.ExpertLoad;
import org.dl4jmtp.model.MtpOnlyTraining;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.learning.config.Adam;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Step time of full training against {@code train --train-only mtp} on the same HF checkpoint (docs/training.md): both
 * graphs are built as {@code Trainer} builds them (batch 8 x 128, Adam, clipping) and their steps (fit + expert-bias
 * balancing) alternate on the same batches in one JVM, so that load from other processes falls on both alike; medians
 * after 10 warm-up steps.
 *
 * <p>Usage (ND4J single-threaded, as the launcher runs train): {@code OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 java -cp
 * dl4j-mtp-examples/target/dl4j-mtp.jar scripts/TrainOnlyStepBench.java runs/tiny/hf 110 [explicit|samediff] [data dir]}
 */
public class TrainOnlyStepBench {
    public static void main(String[] args) throws Exception {
        Path hf = Path.of(args[0]);
        int steps = Integer.parseInt(args[1]);
        String runtime = args.length > 2 ? args[2] : "explicit";
        NemotronV3Config config = NemotronV3Config.fromJson(hf.resolve("config.json"));
        MtpConfig mtp = MtpConfig.fromHf(config);
        TrainOptions options = new TrainOptions(steps, 8, 128, 3e-3, 30, 0.1, 1.0, 42, 1000, 8, 1000, 3, "FLOAT", runtime);
        ComputationGraph full = graph(config, mtp, options, hf, false);
        ComputationGraph mtpOnly = graph(config, mtp, options, hf, true);
        MultiDataSetIterator batches = new CorpusTrainingData(Corpus.jargonFile(Path.of(args.length > 3 ? args[3] : "data")),
                new ByteTokenizer(), 0.05, options).training(0);
        List<Double> a = new ArrayList<>();
        List<Double> b = new ArrayList<>();
        for (int i = 0; i < steps; i++) {
            MultiDataSet batch = batches.next();
            boolean fullFirst = i % 2 == 0;
            double t1 = step(fullFirst ? full : mtpOnly, batch);
            double t2 = step(fullFirst ? mtpOnly : full, batch);
            if (i >= 10) {
                (fullFirst ? a : b).add(t1);
                (fullFirst ? b : a).add(t2);
            }
        }
        System.out.printf("%s: steps timed %d each; full median %.4f s, train-only mtp median %.4f s, ratio %.3f%n",
                runtime, a.size(), median(a), median(b), median(b) / median(a));
    }

    static double step(ComputationGraph g, MultiDataSet batch) {
        long t0 = System.nanoTime();
        ExpertLoad.discard(g);
        g.fit(batch);
        ExpertLoad.balance(g, ExpertLoad.drain(g), 1e-2);
        return (System.nanoTime() - t0) / 1e9;
    }

    static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        Collections.sort(s);
        return s.size() % 2 == 1 ? s.get(s.size() / 2) : (s.get(s.size() / 2 - 1) + s.get(s.size() / 2)) / 2;
    }

    static ComputationGraph graph(NemotronV3Config config, MtpConfig mtp, TrainOptions o, Path hf, boolean only) throws Exception {
        ComputationGraphConfiguration conf = NemotronV3ForCausalLM.graphBuilder(config, mtp, true)
                .dataType(o.nd4jDataType()).seed(o.seed()).runtime(o.layerRuntime()).updater(new Adam(o.learningRate()))
                .gradientNormalization(GradientNormalization.ClipL2PerLayer, 1.0).buildConfiguration();
        if (only) {
            MtpOnlyTraining.freezeAllButMtp(conf);
        }
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(hf)) {
            HfStateDictAdapter.load(g, c, true);
        }
        return g;
    }
}
