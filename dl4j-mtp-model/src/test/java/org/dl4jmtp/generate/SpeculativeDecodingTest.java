package org.dl4jmtp.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.dl4jmtp.model.TokenIds;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Greedy decoding on the fixture (its expected tokens and MTP drafts), and speculative decoding equal to plain greedy
 * for k ∈ {1, 2, 4}: on the fixture model (D = 2, so k = 4 reuses the last physical depth) and on a tiny float model
 * briefly trained on a repetitive sequence (repeated MTP layer), where drafts must actually be accepted.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SpeculativeDecodingTest {

    private static final int[] KS = {1, 2, 4};

    private NemotronV3ForCausalLM fixture;
    private JsonNode greedy;
    private NemotronV3ForCausalLM trained;

    @BeforeAll
    void loadModels() throws Exception {
        fixture = GenerateTestSupport.fixtureModel(DataType.DOUBLE);
        greedy = GenerateTestSupport.expected().get("greedy");
        trained = trainedTinyModel();
    }

    @Test
    void fixtureGreedyTokensAndDraftsAreReproduced() throws Exception {
        int[] prompt = GenerateTestSupport.ints(greedy.get("prompt"));
        int[] expected = GenerateTestSupport.ints(greedy.get("generated"));
        int steps = greedy.get("steps").asInt();
        for (NemotronV3ForCausalLM model : List.of(fixture, GenerateTestSupport.fixtureModel(DataType.FLOAT))) {
            CachedNemotronV3 cached = CachedNemotronV3.of(model);
            String type = " (" + cached.dataType() + ")";
            assertArrayEquals(expected, new CachedGreedyDecoder(cached).generate(prompt, steps).tokens(), "cached greedy" + type);

            // No fixture draft matches, so every verify step emits one token and the verify step after
            // generated[s] drafts drafts[s]; one token more gives the drafts of the last step too.
            GenerationResult speculative = new SpeculativeDecoder(cached, 2).generate(prompt, steps + 1);
            assertArrayEquals(expected, Arrays.copyOf(speculative.tokens(), steps), "speculative k=2" + type);
            assertEquals(steps, speculative.drafts().size());
            for (int s = 0; s < steps; s++) {
                assertArrayEquals(GenerateTestSupport.ints(greedy.get("drafts").get(s)), speculative.drafts().get(s),
                        "drafts of step " + s + type);
            }
        }
        assertArrayEquals(expected, new FullRecomputeDecoder(fixture).generate(prompt, steps).tokens(), "full recompute");
    }

    @Test
    void speculativeEqualsGreedyOnTheFixture() throws Exception {
        CachedNemotronV3 cached = CachedNemotronV3.of(fixture);
        INDArray ids = GenerateTestSupport.fixtureInputIds();
        List<int[]> prompts = List.of(Arrays.copyOf(GenerateTestSupport.row(ids, 1), 13), new int[]{42});
        for (int[] prompt : prompts) {
            int[] plain = new CachedGreedyDecoder(cached).generate(prompt, 12).tokens();
            for (int k : KS) {
                GenerationResult result = new SpeculativeDecoder(cached, k).generate(prompt, 12);
                assertArrayEquals(plain, result.tokens(), "k = " + k + ", prompt " + Arrays.toString(prompt));
                System.out.println("fixture prompt " + prompt.length + " tokens, " + result.stats());
            }
        }
    }

    @Test
    void speculativeEqualsGreedyOnABrieflyTrainedModelAndDraftsAreAccepted() {
        long start = System.nanoTime();
        CachedNemotronV3 cached = CachedNemotronV3.of(trained);
        List<int[]> prompts = List.of(new int[]{5, 11, 2, 14}, new int[]{13});
        for (int[] prompt : prompts) {
            int[] plain = new CachedGreedyDecoder(cached).generate(prompt, 16).tokens();
            for (int k : KS) {
                GenerationResult result = new SpeculativeDecoder(cached, k).generate(prompt, 16);
                assertArrayEquals(plain, result.tokens(), "k = " + k + ", prompt " + Arrays.toString(prompt));
                assertTrue(result.stats().acceptedTokens() > 0, "drafts accepted with k = " + k + ": " + result.stats());
                System.out.println("trained, prompt " + Arrays.toString(prompt) + ": " + result.stats());
            }
        }
        // stop tokens cut every mode at the same place
        int[] plain = new CachedGreedyDecoder(cached).generate(prompts.get(0), 16).tokens();
        Set<Integer> stops = Set.of(plain[9]);
        int[] greedyStopped = new CachedGreedyDecoder(cached).generate(prompts.get(0), 16, stops).tokens();
        assertArrayEquals(greedyStopped, new SpeculativeDecoder(cached, 4).generate(prompts.get(0), 16, stops).tokens());
        assertTrue(greedyStopped.length <= 10);
        long decoded = System.nanoTime();

        DecodeBenchmarkResult bench = DecodeBenchmark.run(trained, prompts, 8, 2);
        System.out.println("bench-decode " + toJson(bench));
        assertTrue(bench.outputsIdentical());
        assertEquals(16, bench.speculative().tokens());
        assertTrue(bench.acceptance().acceptedTokens() > 0);
        System.out.printf("trained-model test: decoding %.1f s, bench %.1f s%n",
                (decoded - start) / 1e9, (System.nanoTime() - decoded) / 1e9);
    }

    /**
     * Partial acceptance: the trained model with noise on its MTP fusion weights drafts some tokens right and some
     * wrong, so verify steps accept a proper prefix and roll back the rest (main and MTP caches).
     */
    @Test
    void partialAcceptanceRollsBackToTheAcceptedPrefix() {
        Map<String, INDArray> fusionWeights = new TreeMap<>();
        HfStateDictAdapter.parameters(trained.graph()).forEach((key, view) -> {
            if (key.startsWith("mtp.") && key.endsWith("eh_proj.weight")) {
                fusionWeights.put(key, view);
            }
        });
        Map<String, INDArray> saved = new TreeMap<>();
        fusionWeights.forEach((key, view) -> saved.put(key, view.dup()));
        Nd4j.getRandom().setSeed(99);
        fusionWeights.values().forEach(view -> view.addi(Nd4j.randn(view.dataType(), view.shape()).muli(0.3)));
        try {
            CachedNemotronV3 cached = CachedNemotronV3.of(trained);
            int[] prompt = {5, 11, 2, 14};
            int[] plain = new CachedGreedyDecoder(cached).generate(prompt, 16).tokens();
            boolean partial = false;
            for (int k : KS) {
                GenerationResult result = new SpeculativeDecoder(cached, k).generate(prompt, 16);
                assertArrayEquals(plain, result.tokens(), "k = " + k);
                System.out.println("trained + noisy MTP: " + result.stats());
                partial |= result.stats().acceptedTokens() > 0 && result.stats().acceptanceRate() < 1.0;
            }
            assertTrue(partial, "some verify step accepted part of its drafts");
        } finally {
            fusionWeights.forEach((key, view) -> view.assign(saved.get(key)));
        }
    }

    /**
     * A float model with all four block types and a repeated MTP layer (D = 2), 30 Adam steps on the cycle of a fixed
     * permutation (labels pre-shifted [B, 1, T]).
     */
    private static NemotronV3ForCausalLM trainedTinyModel() {
        NemotronV3Config config = new NemotronV3Config();
        config.setVocabSize(16);
        config.setHiddenSize(16);
        config.hybridOverridePattern("M*-E");
        config.setNumAttentionHeads(2);
        config.setNumKeyValueHeads(1);
        config.setHeadDim(8);
        config.setMambaNumHeads(2);
        config.setMambaHeadDim(8);
        config.setSsmStateSize(8);
        config.setNGroups(1);
        config.setChunkSize(8);
        config.setIntermediateSize(32);
        config.setNRoutedExperts(4);
        config.setNumExpertsPerTok(2);
        config.setMoeIntermediateSize(16);
        config.setMoeSharedExpertIntermediateSize(16);
        config.setRoutedScalingFactor(2.5);
        config.mtpHybridOverridePattern("*E");
        config.setNumNextnPredictLayers(1);
        config.validate();
        MtpConfig mtp = MtpConfig.builder().numLayers(2).layerPattern("*E").useRepeatedLayer(true)
                .lossScalingFactor(1.0).build();
        ComputationGraph graph = NemotronV3ForCausalLM.graphBuilder(config, mtp)
                .dataType(DataType.FLOAT).seed(2024).updater(new Adam(1e-2)).build();
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.of(config, mtp, graph);

        int[] cycle = {5, 11, 2, 14, 0, 9, 7, 3, 12, 1, 15, 6, 10, 4, 13, 8};
        int batch = 2;
        int t = 12;
        long[][] ids = new long[batch][t];
        long[][] labels = new long[batch][t];
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < t; i++) {
                ids[b][i] = cycle[(8 * b + i) % cycle.length];
                labels[b][i] = cycle[(8 * b + i + 1) % cycle.length];
            }
        }
        MultiDataSet data = new MultiDataSet(
                TokenIds.toGraphInput(Nd4j.createFromArray(ids), 16, DataType.FLOAT),
                TokenIds.toGraphLabels(Nd4j.createFromArray(labels), 16, DataType.FLOAT));
        long start = System.nanoTime();
        double initial = graph.score(data, false);
        for (int step = 0; step < 30; step++) {
            graph.fit(data);
        }
        double last = graph.score(data, false);
        System.out.printf("trained tiny model: loss %.4f -> %.4f in 30 Adam steps, %.1f s%n", initial, last,
                (System.nanoTime() - start) / 1e9);
        assertTrue(last < 0.5 * initial, "training reduced the loss");
        // the cached path reads the trained weights (float tolerance)
        CachedParityTest.checkParity(model, Nd4j.createFromArray(new long[][]{Arrays.copyOf(ids[1], 10)}), 1e-4);
        return model;
    }

    private static String toJson(DecodeBenchmarkResult result) {
        try {
            return new ObjectMapper().writeValueAsString(result.toJsonMap());
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
