package org.dl4jmtp.model;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.layers.LayerRuntime;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The expert loads of the MoE layers, backbone and MTP, counted by the layers' own routing: the same on both runtimes,
 * in training and inference forward passes, serial or data-parallel, and equal to a routing recomputed here from the
 * fixture's recorded block input.
 */
class ExpertLoadTest {

    private static final List<String> MOE_LAYERS = List.of("backbone.layers.3", "mtp.layers.1", "mtp.layers.3");

    @Test
    void bothRuntimesCountTheSameLoadsAsAnIndependentRoutingOfTheFixture() throws Exception {
        INDArray ids;
        INDArray labels;
        INDArray blockInput;
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            ids = io.get("input_ids", DataType.DOUBLE);
            labels = io.get("labels", DataType.DOUBLE);
            blockInput = io.get("hidden_after_layer_2", DataType.DOUBLE);   // [B, T, H], the input of MoE block 3
        }
        Map<String, long[]> explicit = inferenceCounts(TinyHybridFixture.load(DataType.DOUBLE, LayerRuntime.EXPLICIT), ids);
        Map<String, long[]> sameDiff = inferenceCounts(TinyHybridFixture.load(DataType.DOUBLE, LayerRuntime.SAMEDIFF), ids);
        assertEquals(MOE_LAYERS, List.copyOf(explicit.keySet()));
        for (String layer : MOE_LAYERS) {
            assertArrayEquals(explicit.get(layer), sameDiff.get(layer), layer);
            assertEquals(2 * 20 * 2, sum(explicit.get(layer)), layer + ": B·T tokens, k = 2 choices each");
        }
        NemotronV3ForCausalLM model = TinyHybridFixture.load(DataType.DOUBLE);
        assertArrayEquals(hostRouting(model, "backbone.layers.3", blockInput), explicit.get("backbone.layers.3"));

        // a training forward pass (gradient computation) counts the same, once
        for (LayerRuntime runtime : LayerRuntime.values()) {
            NemotronV3ForCausalLM m = TinyHybridFixture.load(DataType.DOUBLE, runtime);
            ExpertLoad.discard(m.graph());
            m.gradients(ids, labels);
            Map<String, long[]> training = ExpertLoad.drain(m.graph());
            for (String layer : MOE_LAYERS) {
                assertArrayEquals(explicit.get(layer), training.get(layer), runtime + " " + layer);
            }
            assertEquals(Map.of(), ExpertLoad.drain(m.graph()), "drained");
        }
    }

    @Test
    void aWeightTiedDepthSumsItsUsesAndReplicasSumTheirSlices() throws Exception {
        NemotronV3Config config = NemotronV3Config.fromJson(TinyHybridFixture.dir().resolve("config.json"));
        MtpConfig repeated = MtpConfig.fromHf(config, 0.1, 2, true);
        NemotronV3ForCausalLM explicit = NemotronV3ForCausalLM.create(config, repeated, DataType.DOUBLE, 3, LayerRuntime.EXPLICIT);
        NemotronV3ForCausalLM sameDiff = NemotronV3ForCausalLM.create(config, repeated, DataType.DOUBLE, 3, LayerRuntime.SAMEDIFF);
        sameDiff.graph().setParams(explicit.graph().params());
        INDArray ids;
        INDArray labels;
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            ids = io.get("input_ids", DataType.DOUBLE);
            labels = io.get("labels", DataType.DOUBLE);
        }
        Map<String, long[]> a = inferenceCounts(explicit, ids);
        Map<String, long[]> b = inferenceCounts(sameDiff, ids);
        assertEquals(List.of("backbone.layers.3", "mtp.layers.1"), List.copyOf(a.keySet()));
        assertEquals(2 * 2 * 20 * 2, sum(a.get("mtp.layers.1")), "D = 2 uses of B·T tokens, k = 2");
        for (String layer : a.keySet()) {
            assertArrayEquals(a.get(layer), b.get(layer), layer);
        }

        // a training step (DL4J's fit) on two replicas counts what the serial step counts
        ComputationGraph parallel = DataParallelGraph.of(explicit.graph(), 2);     // a copy of the parameters
        org.nd4j.linalg.dataset.MultiDataSet batch = new org.nd4j.linalg.dataset.MultiDataSet(
                TokenIds.toGraphInput(ids, config.getVocabSize(), DataType.DOUBLE),
                TokenIds.toGraphLabels(labels, config.getVocabSize(), DataType.DOUBLE));
        ExpertLoad.discard(explicit.graph());
        explicit.graph().fit(batch);
        Map<String, long[]> serial = ExpertLoad.drain(explicit.graph());
        parallel.fit(batch);
        Map<String, long[]> sliced = ExpertLoad.drain(parallel);
        assertEquals(1, ((DataParallelGraph) parallel).replicaGraphs().size(), "the second slice ran on a replica");
        assertEquals(a.keySet(), serial.keySet());
        for (String layer : a.keySet()) {
            assertArrayEquals(a.get(layer), serial.get(layer), layer);
            assertArrayEquals(serial.get(layer), sliced.get(layer), layer);
        }
    }

    private static Map<String, long[]> inferenceCounts(NemotronV3ForCausalLM model, INDArray ids) {
        ExpertLoad.discard(model.graph());
        model.forward(ids);
        return ExpertLoad.drain(model.graph());
    }

    /**
     * The reference routing, written out here: RMSNorm·g, sigmoid(x·Wᵀ), top-2 of score + bias (the lower index on a
     * tie), counted per expert.
     */
    private static long[] hostRouting(NemotronV3ForCausalLM model, String layer, INDArray input) {
        Map<String, INDArray> p = model.graph().getLayer(layer).paramTable();
        double[] norm = p.get("norm.weight").toDoubleVector();
        double[][] gate = p.get("mixer.gate.weight").toDoubleMatrix();
        double[] bias = p.get("mixer.gate.e-score-correction-bias").toDoubleVector();
        double eps = model.config().getLayerNormEpsilon();
        long[] counts = new long[gate.length];
        double[][][] x = new double[(int) input.size(0)][][];
        for (int b = 0; b < x.length; b++) {
            x[b] = input.slice(b).toDoubleMatrix();
        }
        for (double[][] row : x) {
            for (double[] token : row) {
                double ms = 0;
                for (double v : token) {
                    ms += v * v / token.length;
                }
                double inv = 1 / Math.sqrt(ms + eps);
                double[] selection = new double[gate.length];
                for (int e = 0; e < gate.length; e++) {
                    double logit = 0;
                    for (int j = 0; j < token.length; j++) {
                        logit += token[j] * inv * norm[j] * gate[e][j];
                    }
                    selection[e] = 1 / (1 + Math.exp(-logit)) + bias[e];
                }
                for (int round = 0; round < 2; round++) {
                    int best = 0;
                    for (int e = 1; e < selection.length; e++) {
                        if (selection[e] > selection[best]) {
                            best = e;
                        }
                    }
                    counts[best]++;
                    selection[best] = Double.NEGATIVE_INFINITY;
                }
            }
        }
        return counts;
    }

    private static long sum(long[] values) {
        long s = 0;
        for (long v : values) {
            s += v;
        }
        return s;
    }
}
