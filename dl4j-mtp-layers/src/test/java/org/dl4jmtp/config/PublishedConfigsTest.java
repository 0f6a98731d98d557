package org.dl4jmtp.config;

import static org.dl4jmtp.config.BlockType.ATTENTION;
import static org.dl4jmtp.config.BlockType.MAMBA;
import static org.dl4jmtp.config.BlockType.MLP;
import static org.dl4jmtp.config.BlockType.MOE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;

/**
 * NVIDIA's published configurations (src/test/resources/published-configs, sources in its SOURCES.md) parse, have
 * the published layer mix, and give the published parameter counts. A tolerance is half a unit of the published
 * figure's last digit ("8B" → ±0.5B, "31.6B" → ±0.05B), not fitted to our result.
 */
class PublishedConfigsTest {

    private static final double B = 1e9;

    @Test
    void nemotronH8b() throws Exception {
        // Megatron-Bridge's copy: old field names and "n_routed_experts": null although no layer is MoE
        NemotronV3Config c = published("nemotron-h-8b-base-8k.json");
        assertLayers(c, 52, 24, 4, 24, 0);
        assertEquals(128, c.getHeadDim(), "attention_head_dim");
        assertEquals("relu2", c.getMlpHiddenAct());
        assertEquals(0, c.getNumNextnPredictLayers());
        // published: "8B" in the model name
        assertNear(8 * B, 0.5 * B, ParameterCount.total(c), "params_total");
    }

    @Test
    void nemotronNano9bV2() throws Exception {
        NemotronV3Config c = published("nvidia-nemotron-nano-9b-v2.json");
        assertLayers(c, 56, 27, 4, 25, 0);
        assertEquals(80, c.getMambaHeadDim());
        // published: "9B" in the model name
        assertNear(9 * B, 0.5 * B, ParameterCount.total(c), "params_total");
    }

    @Test
    void nemotron3Nano30bA3b() throws Exception {
        NemotronV3Config c = published("nvidia-nemotron-3-nano-30b-a3b.json");
        // the model card: 23 Mamba-2, 23 MoE and 6 attention layers
        assertLayers(c, 52, 23, 6, 0, 23);
        assertEquals(1e-5, c.getLayerNormEpsilon(), "layer_norm_epsilon (norm_eps alongside)");
        // NVIDIA's figures for Nemotron 3 Nano: 31.6B total; 3.2B active, 3.6B including embeddings
        assertNear(31.6 * B, 0.05 * B, ParameterCount.total(c), "params_total");
        long active = ParameterCount.activePerToken(c);
        assertNear(3.6 * B, 0.05 * B, active, "params_active_per_token");
        assertNear(3.2 * B, 0.05 * B, active - embeddings(c), "active without the embedding table");
    }

    @Test
    void nemotron3Super120bA12b() throws Exception {
        NemotronV3Config c = published("nvidia-nemotron-3-super-120b-a12b.json");
        assertLayers(c, 88, 40, 8, 0, 40);
        assertEquals(1024, c.getMoeLatentSize());
        assertEquals(1, c.getNumNextnPredictLayers());
        assertEquals(List.of(ATTENTION, MOE), c.getMtpLayerTypes());
        // NVIDIA: "a 12B active 120B total parameter" model (two significant digits); active counted, as for
        // Nano's "3.2B", without the embedding table
        assertNear(120 * B, 5 * B, ParameterCount.total(c), "params_total");
        assertNear(12 * B, 0.5 * B, ParameterCount.activePerToken(c) - embeddings(c),
                "active without the embedding table");
        assertTrue(ParameterCount.mtp(c) > 0 && ParameterCount.mtp(c) < ParameterCount.total(c) / 20,
                "one MTP depth is a small part of the model: " + ParameterCount.mtp(c));
    }

    @Test
    void everyPublishedConfigCountsAnMtpFreeBackboneLikeItsPattern() throws Exception {
        for (String name : List.of("nemotron-h-8b-base-8k.json", "nvidia-nemotron-nano-9b-v2.json",
                "nvidia-nemotron-3-nano-30b-a3b.json", "nvidia-nemotron-3-super-120b-a12b.json")) {
            NemotronV3Config c = published(name);
            long blocks = 0;
            for (BlockType t : c.getLayerTypes()) {
                blocks += ParameterCount.block(c, t);
            }
            long h = c.getHiddenSize();
            assertEquals(2L * c.getVocabSize() * h + blocks + h, ParameterCount.backbone(c), name);
            assertEquals(ParameterCount.backbone(c) + ParameterCount.mtp(c), ParameterCount.total(c), name);
            if (!c.usesBlockType(MOE)) {
                assertEquals(ParameterCount.total(c), ParameterCount.activePerToken(c), name);
            }
        }
    }

    private static NemotronV3Config published(String name) throws Exception {
        return NemotronV3Config.fromJson(resource(name));
    }

    private static Path resource(String name) throws URISyntaxException {
        return Path.of(PublishedConfigsTest.class.getResource("/published-configs/" + name).toURI());
    }

    private static void assertLayers(NemotronV3Config c, int layers, int mamba, int attention, int mlp, int moe) {
        assertEquals(layers, c.getNumHiddenLayers());
        assertEquals(layers, c.getLayerTypes().size());
        assertEquals(mamba, c.countLayers(MAMBA), "mamba layers of " + c.pattern());
        assertEquals(attention, c.countLayers(ATTENTION), "attention layers of " + c.pattern());
        assertEquals(mlp, c.countLayers(MLP), "mlp layers of " + c.pattern());
        assertEquals(moe, c.countLayers(MOE), "moe layers of " + c.pattern());
    }

    private static long embeddings(NemotronV3Config c) {
        return (long) c.getVocabSize() * c.getHiddenSize();
    }

    private static void assertNear(double published, double tolerance, long ours, String what) {
        assertTrue(Math.abs(ours - published) <= tolerance, String.format("%s: %,d is not within %.3gB of the"
                + " published %.4gB", what, ours, tolerance / B, published / B));
    }
}
