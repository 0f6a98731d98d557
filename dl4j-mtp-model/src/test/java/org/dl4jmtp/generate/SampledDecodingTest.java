package org.dl4jmtp.generate;

import com.fasterxml.jackson.databind.JsonNode;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.nd4j.linalg.api.buffer.DataType;

import java.util.Arrays;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Decoding through a {@link Sampler}: the cached path ({@code model.generate}) and full recomputation pick the same
 * tokens for the same seed, greedy settings reproduce greedy decoding, stop tokens end the generation, and the
 * full-recompute drafts reproduce the fixture's.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SampledDecodingTest {

    private static final int[] PROMPT = {5, 17, 42, 8, 30};
    private static final int STEPS = 12;

    private NemotronV3ForCausalLM model;
    private int[] greedy;

    @BeforeAll
    void buildModel() {
        model = GenerateTestSupport.randomHybrid(false, false, 7);
        greedy = new FullRecomputeDecoder(model).generate(PROMPT, STEPS).tokens();
    }

    @Test
    void cachedAndFullRecomputeSampleTheSameTokens() {
        for (int topK : new int[]{0, 5}) {
            for (long seed : new long[]{1, 2, 3}) {
                int[] cached = model.generate(PROMPT, STEPS, Sampler.of(2.0, topK, seed)).tokens();
                int[] full = new FullRecomputeDecoder(model, Sampler.of(2.0, topK, seed)).generate(PROMPT, STEPS).tokens();
                String what = "top-k " + topK + ", seed " + seed;
                assertArrayEquals(full, cached, what);
                assertFalse(Arrays.equals(greedy, cached), what + ": sampling at temperature 2 is not greedy");
            }
        }
    }

    @Test
    void greedySettingsDecodeGreedily() {
        assertArrayEquals(greedy, model.generate(PROMPT, STEPS, Sampler.greedy()).tokens(), "Sampler.greedy()");
        assertArrayEquals(greedy, model.generate(PROMPT, STEPS, Sampler.of(0, 3, 9)).tokens(), "temperature 0");
        for (double temperature : new double[]{0.5, 5.0, 100.0}) {
            assertArrayEquals(greedy, model.generate(PROMPT, STEPS, Sampler.of(temperature, 1, 9)).tokens(),
                    "top-k 1 at temperature " + temperature);
            assertArrayEquals(greedy, new FullRecomputeDecoder(model, Sampler.of(temperature, 1, 9))
                    .generate(PROMPT, STEPS).tokens(), "full recompute, top-k 1 at temperature " + temperature);
        }
    }

    /** With eos set to the 5th greedy token, generation ends right after its first occurrence. */
    @Test
    void stopAtEosEndsAfterTheFirstEos() {
        int eos = greedy[4];
        int end = 0;
        while (greedy[end] != eos) {
            end++;
        }
        List<Integer> saved = model.config().getEosTokenIds();
        model.config().setEosTokenIds(List.of(eos));
        try {
            assertArrayEquals(Arrays.copyOf(greedy, end + 1),
                    model.generate(PROMPT, STEPS, Sampler.greedy(), true).tokens());
            assertArrayEquals(greedy, model.generate(PROMPT, STEPS, Sampler.greedy(), false).tokens(), "no stop");
        } finally {
            model.config().setEosTokenIds(saved);
        }
    }

    @Test
    void fullRecomputeDraftsReproduceTheFixture() throws Exception {
        JsonNode expected = GenerateTestSupport.expected().get("greedy");
        int steps = expected.get("steps").asInt();
        GenerationResult result = new FullRecomputeDecoder(GenerateTestSupport.fixtureModel(DataType.DOUBLE))
                .generateWithDrafts(GenerateTestSupport.ints(expected.get("prompt")), steps, Set.of());
        assertArrayEquals(GenerateTestSupport.ints(expected.get("generated")), result.tokens());
        assertEquals(steps, result.drafts().size());
        for (int s = 0; s < steps; s++) {
            assertArrayEquals(GenerateTestSupport.ints(expected.get("drafts").get(s)), result.drafts().get(s), "step " + s);
        }
    }

    @Test
    void draftsNeedMtpDepths() {
        NemotronV3ForCausalLM noMtp = NemotronV3ForCausalLM.create(GenerateTestSupport.hybridConfig(false),
                org.dl4jmtp.config.MtpConfig.builder().numLayers(0).build(), DataType.DOUBLE, 1);
        assertThrows(IllegalArgumentException.class,
                () -> new FullRecomputeDecoder(noMtp).generateWithDrafts(new int[]{1}, 2, Set.of()));
    }
}
