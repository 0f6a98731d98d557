package org.dl4jmtp.examples.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.UserException;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Training from a pretrained HF checkpoint ({@code --init-from}), only the MTP depths ({@code --train-only mtp}) and
 * with expert-bias balancing, on a micro model with a MoE backbone block and MoE MTP depths. Seconds per run.
 */
class PretrainedTrainingTest {

    private static final PrintStream QUIET = new PrintStream(new ByteArrayOutputStream());
    private static final String BACKBONE_BIAS = "backbone.layers.1.mixer.gate.e_score_correction_bias";
    private static final String MTP_BIAS = "mtp.layers.0.mixer.gate.e_score_correction_bias";

    /** Mamba2 + MoE backbone, byte vocabulary, MTP pattern "E" (a MoE sublayer per depth), 2 depths. */
    static NemotronV3Config microMoeConfig() {
        return NemotronV3Config.fromJsonString("{\"model_type\": \"nemotron_h\", \"vocab_size\": 256, \"hidden_size\": 32,"
                + "\"hybrid_override_pattern\": \"ME\", \"mamba_num_heads\": 2, \"mamba_head_dim\": 16,"
                + "\"ssm_state_size\": 8, \"n_groups\": 1, \"conv_kernel\": 4, \"chunk_size\": 16,"
                + "\"n_routed_experts\": 4, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 16,"
                + "\"moe_shared_expert_intermediate_size\": 16, \"n_shared_experts\": 1, \"routed_scaling_factor\": 2.5,"
                + "\"norm_topk_prob\": true, \"num_nextn_predict_layers\": 2, \"mtp_hybrid_override_pattern\": \"E\"}");
    }

    static TrainOptions options(int steps, String dtype, LayerRuntime runtime, Path initFrom, String trainOnly) {
        return new TrainOptions(steps, 4, 32, 1e-2, 2, 0.1, 1.0, 7, steps, 2, 3, 5, dtype, runtime.cliName())
                .withPretraining(0.004, initFrom == null ? null : initFrom.toString(), trainOnly);
    }

    /** A "pretrained" checkpoint: a fresh model whose backbone biases are set off zero, saved as HF. */
    private static Path pretrained(Path dir, NemotronV3Config config, MtpConfig mtp, boolean withMtp) throws Exception {
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.create(config, mtp, DataType.FLOAT, 99);
        model.graph().getLayer("backbone.layers.1").getParam("mixer.gate.e-score-correction-bias")
                .assign(org.nd4j.linalg.factory.Nd4j.create(new float[]{0.01f, -0.02f, 0.03f, 0f}, new long[]{1, 4}));
        model.save(dir, withMtp);
        return dir;
    }

    @ParameterizedTest
    @EnumSource(LayerRuntime.class)
    void trainOnlyMtpLeavesEverythingElseBitIdenticalAndTrainsTheDepths(LayerRuntime runtime, @TempDir Path base)
            throws Exception {
        NemotronV3Config config = microMoeConfig();
        MtpConfig mtp = MtpConfig.fromHf(config);
        Path input = pretrained(base.resolve("pretrained"), config, mtp, true);
        Path run = base.resolve("run");
        TrainOptions options = options(8, "FLOAT", runtime, input, TrainOptions.TRAIN_MTP);
        new Trainer(run, QUIET).train(config, mtp, options, data(Corpus.synthetic(4, 3, 3000), options));

        Map<String, int[]> before = bits(input);
        Map<String, int[]> after = bits(run.resolve("hf"));
        assertEquals(before.keySet(), after.keySet());
        List<String> changed = new ArrayList<>();
        for (String key : before.keySet()) {
            boolean same = Arrays.equals(before.get(key), after.get(key));
            if (!key.startsWith("mtp.")) {
                assertTrue(same, key + " is outside mtp.* and must be bit-identical");
            } else if (!same) {
                changed.add(key);
            }
        }
        assertTrue(changed.contains("mtp.layers.0.eh_proj.weight") && changed.contains("mtp.layers.1.mixer.gate.weight")
                && changed.contains(MTP_BIAS), "trained MTP tensors " + changed);
        assertFalse(Arrays.equals(new int[4], after.get(MTP_BIAS)), "the MTP MoE bias is balanced");

        List<double[]> mtpLosses = column(run, "mtp_losses");
        double first = mtpLosses.get(0)[0] + mtpLosses.get(0)[1];
        double last = mtpLosses.get(7)[0] + mtpLosses.get(7)[1];
        assertTrue(last < first - 0.5, "MTP losses fall: " + first + " → " + last);

        // Adam state for the MTP parameters only (every mtp.* tensor but the two correction biases)
        ComputationGraph saved = CheckpointStore.restore(run.resolve("checkpoints/step-000008.zip"));
        long mtpTrainable = 0;
        for (Layer layer : saved.getLayers()) {
            if (layer.conf().getLayer().getLayerName().startsWith("mtp.")) {
                mtpTrainable += layer.numParams()
                        - (layer.paramTable().containsKey("mixer.gate.e-score-correction-bias") ? 4 : 0);
            }
        }
        assertEquals(2 * mtpTrainable, saved.getUpdater().getStateViewArray().length(), "Adam's m and v of mtp.* only");
    }

    /** Resume of a run with all three on: balancing, --init-from and --train-only mtp (and one training all). */
    @ParameterizedTest
    @EnumSource(value = TrainOnly.class)
    void aResumedRunWithBalancingFromAPretrainedModelFollowsTheSameTrajectoryExactly(TrainOnly only, @TempDir Path base)
            throws Exception {
        NemotronV3Config config = microMoeConfig();
        MtpConfig mtp = MtpConfig.fromHf(config);
        Path input = pretrained(base.resolve("pretrained"), config, mtp, true);
        Corpus corpus = Corpus.synthetic(5, 3, 3000);
        TrainOptions options = options(6, "DOUBLE", LayerRuntime.EXPLICIT, input, only.value);
        Path straight = base.resolve("straight");
        new Trainer(straight, QUIET).train(config, mtp, options, data(corpus, options));

        Path interrupted = base.resolve("interrupted");
        Trainer first = new Trainer(interrupted, QUIET);
        first.addListener(new BaseTrainingListener() {
            @Override
            public void iterationDone(Model model, int iteration, int epoch) {
                if (iteration == 2) {
                    first.requestStop();       // after step 3, as Ctrl-C: checkpoint at step 3
                }
            }
        });
        assertTrue(first.train(config, mtp, options, data(corpus, options)).interrupted());
        new Trainer(interrupted, QUIET).resume(data(corpus, options));

        assertEquals(column(straight, "loss").stream().map(v -> v[0]).toList(),
                column(interrupted, "loss").stream().map(v -> v[0]).toList(), "loss trajectory");
        Map<String, int[]> expected = bits(straight.resolve("hf"));
        Map<String, int[]> actual = bits(interrupted.resolve("hf"));
        for (String key : expected.keySet()) {
            assertArrayEquals(expected.get(key), actual.get(key), key);
        }
        assertFalse(Arrays.equals(bits(input).get(MTP_BIAS), expected.get(MTP_BIAS)), "balancing moved the MTP bias");
        assertEquals(only == TrainOnly.MTP, Arrays.equals(bits(input).get(BACKBONE_BIAS), expected.get(BACKBONE_BIAS)),
                "the backbone bias balances only when the backbone trains");
    }

    enum TrainOnly {
        ALL(TrainOptions.TRAIN_ALL), MTP(TrainOptions.TRAIN_MTP);

        final String value;

        TrainOnly(String value) {
            this.value = value;
        }
    }

    /** A weight-tied depth (one physical depth applied D = 2 times) heals from a checkpoint holding that one depth. */
    @Test
    void trainOnlyMtpTrainsAWeightTiedDepthLoadedFromTheCheckpoint(@TempDir Path base) throws Exception {
        NemotronV3Config config = microMoeConfig();
        MtpConfig repeated = MtpConfig.fromHf(config, 0.1, 2, true);
        Path input = pretrained(base.resolve("pretrained"), config, repeated, true);   // num_nextn_predict_layers 1
        NemotronV3Config saved = NemotronV3Config.fromJson(input.resolve("config.json"));
        assertEquals(1, saved.getNumNextnPredictLayers());
        TrainOptions options = options(3, "FLOAT", LayerRuntime.EXPLICIT, input, TrainOptions.TRAIN_MTP);
        new Trainer(base.resolve("run"), QUIET).train(saved, MtpConfig.fromHf(saved, 0.1, 2, true), options,
                data(Corpus.synthetic(4, 3, 2000), options));
        Map<String, int[]> before = bits(input);
        Map<String, int[]> after = bits(base.resolve("run/hf"));
        assertEquals(before.keySet(), after.keySet());
        for (String key : before.keySet()) {
            if (!key.startsWith("mtp.")) {
                assertArrayEquals(before.get(key), after.get(key), key);
            }
        }
        assertFalse(Arrays.equals(before.get("mtp.layers.0.eh_proj.weight"), after.get("mtp.layers.0.eh_proj.weight")));
        assertFalse(Arrays.equals(before.get(MTP_BIAS), after.get(MTP_BIAS)), "the tied depth's bias is balanced");
    }

    /** Two replicas: the same trajectory as one, the backbone still bit-identical (frozen gradients sum to zero). */
    @Test
    void trainOnlyMtpWithBalancingOnTwoReplicasFollowsTheSerialRun(@TempDir Path base) throws Exception {
        NemotronV3Config config = microMoeConfig();
        MtpConfig mtp = MtpConfig.fromHf(config);
        Path input = pretrained(base.resolve("pretrained"), config, mtp, true);
        Corpus corpus = Corpus.synthetic(6, 3, 3000);
        TrainOptions options = options(4, "DOUBLE", LayerRuntime.EXPLICIT, input, TrainOptions.TRAIN_MTP);
        new Trainer(base.resolve("serial"), QUIET).train(config, mtp, options, data(corpus, options));
        new Trainer(base.resolve("parallel"), QUIET).replicas(2).train(config, mtp, options, data(corpus, options));
        List<double[]> serial = column(base.resolve("serial"), "loss");
        List<double[]> parallel = column(base.resolve("parallel"), "loss");
        for (int i = 0; i < serial.size(); i++) {
            assertEquals(serial.get(i)[0], parallel.get(i)[0], 1e-12, "loss of step " + (i + 1));
        }
        Map<String, int[]> before = bits(input);
        Map<String, int[]> serialOut = bits(base.resolve("serial/hf"));
        Map<String, int[]> after = bits(base.resolve("parallel/hf"));
        for (String key : before.keySet()) {
            if (!key.startsWith("mtp.")) {
                assertArrayEquals(before.get(key), after.get(key), key);
            }
        }
        assertArrayEquals(serialOut.get(MTP_BIAS), after.get(MTP_BIAS), "the replicas' counts are summed");
    }

    @Test
    void aCheckpointWithoutMtpStartsTheDepthsFreshAndSaysSo(@TempDir Path base) throws Exception {
        NemotronV3Config config = microMoeConfig();
        MtpConfig mtp = MtpConfig.fromHf(config);
        Path input = pretrained(base.resolve("pretrained"), config, mtp, false);
        TrainOptions options = options(2, "FLOAT", LayerRuntime.EXPLICIT, input, TrainOptions.TRAIN_MTP);
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream original = System.err;
        System.setErr(new PrintStream(err, true));
        try {
            new Trainer(base.resolve("run"), QUIET).train(config, mtp, options, data(Corpus.synthetic(4, 3, 2000), options));
        } finally {
            System.setErr(original);
        }
        assertTrue(err.toString().contains("holds no mtp.* weights") && err.toString().contains("2 MTP depth(s) start"
                + " from the reference initialisation"), err.toString());
        Map<String, int[]> before = bits(input);
        Map<String, int[]> after = bits(base.resolve("run/hf"));
        before.forEach((key, value) -> assertArrayEquals(value, after.get(key), key));
        assertTrue(after.containsKey("mtp.layers.1.final_layernorm.weight"), "the export holds the new depths");
    }

    @Test
    void mtpOptionsThatDoNotMatchTheCheckpointsDepthsAreAClearError(@TempDir Path base) throws Exception {
        NemotronV3Config config = microMoeConfig();
        Path input = pretrained(base.resolve("pretrained"), config, MtpConfig.fromHf(config), true);
        MtpConfig repeated = MtpConfig.fromHf(config, 0.1, 2, true);       // one physical depth, the checkpoint has 2
        TrainOptions options = options(2, "FLOAT", LayerRuntime.EXPLICIT, input, TrainOptions.TRAIN_ALL);
        UserException e = assertThrows(UserException.class, () -> new Trainer(base.resolve("run"), QUIET)
                .train(config, repeated, options, data(Corpus.synthetic(4, 3, 2000), options)));
        assertTrue(e.getMessage().contains("--init-from " + input) && e.getMessage().contains("unexpected keys")
                && e.getMessage().contains("mtp.layers.1.") && e.getMessage().contains("--mtp-repeated"), e.getMessage());
    }

    private static CorpusTrainingData data(Corpus corpus, TrainOptions options) {
        return new CorpusTrainingData(corpus, new ByteTokenizer(), 0.1, options);
    }

    /** Every tensor of an HF export as the bits of its float32 values. */
    private static Map<String, int[]> bits(Path hf) throws Exception {
        Map<String, int[]> out = new TreeMap<>();
        try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(hf)) {
            for (String key : checkpoint.keys()) {
                float[] values = checkpoint.get(key, DataType.FLOAT).dup('c').data().asFloat();
                int[] b = new int[values.length];
                for (int i = 0; i < values.length; i++) {
                    b[i] = Float.floatToRawIntBits(values[i]);
                }
                out.put(key, b);
            }
        }
        return out;
    }

    /** The values of {@code field} (a number or an array) in every training row of metrics.jsonl. */
    private static List<double[]> column(Path run, String field) throws Exception {
        List<double[]> out = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
            JsonNode value = json.readTree(line).get(field);
            double[] v = new double[value.isArray() ? value.size() : 1];
            for (int i = 0; i < v.length; i++) {
                v[i] = value.isArray() ? value.get(i).asDouble() : value.asDouble();
            }
            out.add(v);
        }
        return out;
    }
}
