package org.dl4jmtp.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

/** {@link MtpConfig}: the build_mtp_config_from_hf factory, derived values, builder checks, normalisation names. */
class MtpConfigTest {

    private static NemotronV3Config fixture() throws Exception {
        return NemotronV3Config.fromJson(ConfigFixtures.tinyHybridConfig());
    }

    @Test
    void fromHfOnTheFixture() throws Exception {
        NemotronV3Config cfg = fixture();
        MtpConfig m = MtpConfig.fromHf(cfg);
        assertEquals(2, m.getNumLayers());
        assertEquals("*E", m.getLayerPattern());
        assertEquals(0.1, m.getLossScalingFactor());
        assertFalse(m.isUseRepeatedLayer());
        assertEquals(MtpLossNormalization.MAIN_LABEL_COUNT, m.getLossNormalization());
        assertEquals(List.of(BlockType.ATTENTION, BlockType.MOE), m.blockTypes());
        assertEquals(2, m.patternLength());
        assertTrue(m.enabled());
        assertEquals(2, m.numPhysicalDepths());
        assertEquals(4, m.totalSublayers());
        assertEquals(0, m.physicalDepthOf(1));
        assertEquals(1, m.physicalDepthOf(2));
        assertEquals(3, m.globalSublayerIndex(1, 1)); // mtp.layers.3 = depth 2, MoE sublayer
        assertEquals(0.05, m.depthLossWeight(), 1e-15);
        assertEquals(2, MtpConfig.physicalDepthsInCheckpoint(cfg));
    }

    @Test
    void fromHfWithOverrides() throws Exception {
        MtpConfig m = MtpConfig.fromHf(fixture(), 0.3, 3, true);
        assertEquals(3, m.getNumLayers());
        assertEquals(0.3, m.getLossScalingFactor());
        assertTrue(m.isUseRepeatedLayer());
        assertEquals(1, m.numPhysicalDepths());
        assertEquals(2, m.totalSublayers());
        for (int d = 1; d <= 3; d++) {
            assertEquals(0, m.physicalDepthOf(d));
        }
        assertThrows(IllegalArgumentException.class, () -> m.physicalDepthOf(0));
        assertThrows(IllegalArgumentException.class, () -> m.physicalDepthOf(4));
        assertThrows(IllegalArgumentException.class, () -> m.globalSublayerIndex(1, 0));

        MtpConfig nulls = MtpConfig.fromHf(fixture(), null, null, null);
        assertEquals(MtpConfig.fromHf(fixture()), nulls);
    }

    @Test
    void fromHfWithoutMtp() throws Exception {
        NemotronV3Config cfg = fixture();
        cfg.setNumNextnPredictLayers(0);
        cfg.setMtpLayerTypes(null);
        MtpConfig m = MtpConfig.fromHf(cfg);
        assertFalse(m.enabled());
        assertEquals(0, m.numPhysicalDepths());
        assertEquals(0, m.totalSublayers());
        assertEquals(0.0, m.depthLossWeight());
        String msg = assertThrows(IllegalArgumentException.class, () -> MtpConfig.fromHf(cfg, null, 2, null))
                .getMessage();
        assertTrue(msg.contains("mtp_hybrid_override_pattern"), msg);
        // D = 0 override disables MTP even with a pattern
        assertFalse(MtpConfig.fromHf(fixture(), null, 0, true).enabled());
        assertEquals(0, MtpConfig.fromHf(fixture(), null, 0, true).numPhysicalDepths());
    }

    @Test
    void fromHfUsesMtpLayersBlockType() {
        String json = ConfigFixtures.minimalWith("\"mtp_hybrid_override_pattern\": \"*E\"",
                "\"mtp_layers_block_type\": [\"full_attention\", \"mlp\", \"moe\"]");
        MtpConfig m = MtpConfig.fromHf(NemotronV3Config.fromJsonString(json));
        assertEquals("*-E", m.getLayerPattern());
        assertEquals(6, m.totalSublayers());
    }

    @Test
    void disabledAndDefaults() {
        MtpConfig d = MtpConfig.disabled();
        assertEquals(new MtpConfig(), d);
        assertFalse(d.enabled());
        assertEquals(0, d.getNumLayers());
        assertEquals("", d.getLayerPattern());
        assertEquals(0.1, d.getLossScalingFactor());
        assertEquals(List.of(), d.blockTypes());
        assertEquals(0, d.totalSublayers());
    }

    @Test
    void builderValidates() {
        MtpConfig m = MtpConfig.builder().numLayers(1).layerPattern("M*").lossScalingFactor(0)
                .lossNormalization(MtpLossNormalization.PER_DEPTH_COUNT).build();
        assertEquals(MtpLossNormalization.PER_DEPTH_COUNT, m.getLossNormalization());
        assertEquals(0.0, m.depthLossWeight());

        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> MtpConfig.builder().numLayers(1).layerPattern("*E").lossScalingFactor(-0.1).build())
                .getMessage().contains("lambda"));
        assertThrows(IllegalArgumentException.class,
                () -> MtpConfig.builder().numLayers(1).layerPattern("*E").lossScalingFactor(Double.NaN).build());
        assertThrows(IllegalArgumentException.class,
                () -> MtpConfig.builder().numLayers(1).layerPattern("*E").lossScalingFactor(Double.POSITIVE_INFINITY)
                        .build());
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> MtpConfig.builder().numLayers(-1).build()).getMessage().contains("D"));
        assertEquals("MTP layer pattern is empty", assertThrows(IllegalArgumentException.class,
                () -> MtpConfig.builder().numLayers(2).build()).getMessage());
        String msg = assertThrows(IllegalArgumentException.class,
                () -> MtpConfig.builder().numLayers(2).layerPattern("*Z").build()).getMessage();
        assertTrue(msg.contains("'Z'") && msg.contains("['*', '-', 'E', 'M']"), msg);
        assertThrows(IllegalArgumentException.class,
                () -> MtpConfig.builder().numLayers(1).layerPattern("*E").lossNormalization(null).build());
        // D = 0: the pattern is not needed
        assertFalse(MtpConfig.builder().build().enabled());
    }

    @Test
    void lossNormalizationNames() {
        for (String s : List.of("main", "MAIN", " am ", "automodel", "main_label_count")) {
            assertEquals(MtpLossNormalization.MAIN_LABEL_COUNT, MtpLossNormalization.parse(s), s);
        }
        for (String s : List.of("depth", "Megatron", "mg", "per-depth", "PER_DEPTH_COUNT")) {
            assertEquals(MtpLossNormalization.PER_DEPTH_COUNT, MtpLossNormalization.parse(s), s);
        }
        for (String s : new String[] {"token", "", null}) {
            String msg = assertThrows(IllegalArgumentException.class, () -> MtpLossNormalization.parse(s)).getMessage();
            assertTrue(msg.contains("'main'") && msg.contains("'depth'"), msg);
        }
    }
}
