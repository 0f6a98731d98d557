package org.dl4jmtp.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.List;

import org.deeplearning4j.nn.conf.serde.JsonMappers;
import org.junit.jupiter.api.Test;
import org.nd4j.shade.jackson.databind.ObjectMapper;

/**
 * The bean rule: DL4J's own (shaded) Jackson must round-trip both config classes by bean properties, and
 * derived values must not leak into the JSON as properties.
 */
class ConfigBeanSerializationTest {

    private static final ObjectMapper DL4J = JsonMappers.getMapper();

    /** A plain shaded mapper that, unlike DL4J's, fails on unknown properties (catches getters without setters). */
    private static final ObjectMapper STRICT = new ObjectMapper();

    @Test
    void nemotronConfigRoundTripsThroughDl4jJackson() throws Exception {
        NemotronV3Config c = NemotronV3Config.fromJson(ConfigFixtures.tinyHybridConfig());
        c.setTimeStepLimit(new double[] {0.001, Double.POSITIVE_INFINITY});
        c.setMoeLatentSize(16);
        c.setEosTokenIds(List.of(2, 11));
        for (ObjectMapper mapper : List.of(DL4J, STRICT)) {
            String json = mapper.writeValueAsString(c);
            assertEquals(c, mapper.readValue(json, NemotronV3Config.class), json);
            for (String derived : List.of("dinner", "dInner", "convDim", "inProjSize", "expertInputSize",
                    "mtpPattern", "pattern\"", "hasLatentMoe", "queryWidth")) {
                assertFalse(json.contains("\"" + derived), derived + " leaked into " + json);
            }
        }
    }

    @Test
    void mtpConfigRoundTripsThroughDl4jJackson() throws Exception {
        MtpConfig m = MtpConfig.builder().numLayers(3).layerPattern("*E").lossScalingFactor(0.3)
                .useRepeatedLayer(true).lossNormalization(MtpLossNormalization.PER_DEPTH_COUNT).build();
        for (ObjectMapper mapper : List.of(DL4J, STRICT)) {
            String json = mapper.writeValueAsString(m);
            assertEquals(m, mapper.readValue(json, MtpConfig.class), json);
            for (String derived : List.of("enabled", "blockTypes", "patternLength", "totalSublayers",
                    "numPhysicalDepths", "depthLossWeight")) {
                assertFalse(json.contains("\"" + derived), derived + " leaked into " + json);
            }
        }
    }
}
