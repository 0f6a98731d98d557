package org.dl4jmtp.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.layers.LayerRuntime;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/** The shared reference case {@code ../shared/fixtures/tiny-hybrid}: checkpoint, inputs, expected tensors and scalars. */
final class TinyHybridFixture {

    static Path dir() {
        String property = System.getProperty("dl4jmtp.fixtures");
        Path root = property != null ? Paths.get(property) : Paths.get("../../shared/fixtures");
        Path dir = root.resolve("tiny-hybrid");
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("Fixture directory not found: " + dir.toAbsolutePath());
        }
        return dir;
    }

    static JsonNode expected() throws IOException {
        return new ObjectMapper().readTree(dir().resolve("expected.json").toFile());
    }

    /** The MTP training settings the fixture was computed with (its {@code _fixture} block). */
    static MtpConfig mtpSettings() throws IOException {
        NemotronV3Config config = NemotronV3Config.fromJson(dir().resolve("config.json"));
        JsonNode fixture = new ObjectMapper().readTree(dir().resolve("config.json").toFile()).get("_fixture");
        return MtpConfig.fromHf(config, fixture.get("mtp_loss_scaling_factor").asDouble(),
                fixture.get("mtp_num_layers").asInt(), fixture.get("mtp_use_repeated_layer").asBoolean());
    }

    static NemotronV3ForCausalLM load(DataType type) throws IOException {
        return load(type, LayerRuntime.EXPLICIT);
    }

    static NemotronV3ForCausalLM load(DataType type, LayerRuntime runtime) throws IOException {
        return NemotronV3ForCausalLM.fromPretrained(dir(), NemotronV3ForCausalLM.LoadOptions.defaults()
                .withMtp(mtpSettings()).withDataType(type).withRuntime(runtime));
    }

    static SafetensorsCheckpoint io() throws IOException {
        return SafetensorsCheckpoint.open(dir().resolve("io.safetensors"));
    }

    /** max |a - b| / max(max |b|, tiny) */
    static double relativeMaxError(INDArray actual, INDArray expected) {
        INDArray e = expected.castTo(DataType.DOUBLE);
        double scale = Math.max(e.amaxNumber().doubleValue(), 1e-30);
        return actual.castTo(DataType.DOUBLE).sub(e).amaxNumber().doubleValue() / scale;
    }

    static double maxAbsError(INDArray actual, INDArray expected) {
        return actual.castTo(DataType.DOUBLE).sub(expected.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
    }

    private TinyHybridFixture() {
    }
}
