package org.dl4jmtp.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;

/** Models and helpers of the generation tests: the tiny-hybrid fixture and randomly initialised hybrids. */
final class GenerateTestSupport {

    private GenerateTestSupport() {
    }

    static Path fixtureDir() {
        String property = System.getProperty("dl4jmtp.fixtures");
        Path dir = (property != null ? Paths.get(property) : Paths.get("../../shared/fixtures")).resolve("tiny-hybrid");
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("Fixture directory not found: " + dir.toAbsolutePath());
        }
        return dir;
    }

    static JsonNode expected() throws IOException {
        return new ObjectMapper().readTree(fixtureDir().resolve("expected.json").toFile());
    }

    /** The fixture's MTP settings (its {@code _fixture} block: D = 2, not repeated, λ = 0.1). */
    static MtpConfig fixtureMtp() throws IOException {
        NemotronV3Config config = NemotronV3Config.fromJson(fixtureDir().resolve("config.json"));
        JsonNode fixture = new ObjectMapper().readTree(fixtureDir().resolve("config.json").toFile()).get("_fixture");
        return MtpConfig.fromHf(config, fixture.get("mtp_loss_scaling_factor").asDouble(),
                fixture.get("mtp_num_layers").asInt(), fixture.get("mtp_use_repeated_layer").asBoolean());
    }

    static NemotronV3ForCausalLM fixtureModel(DataType type) throws IOException {
        return NemotronV3ForCausalLM.fromPretrained(fixtureDir(),
                NemotronV3ForCausalLM.LoadOptions.defaults().withMtp(fixtureMtp()).withDataType(type));
    }

    /** input_ids [2, 20] of the fixture. */
    static INDArray fixtureInputIds() throws IOException {
        try (SafetensorsCheckpoint io = SafetensorsCheckpoint.open(fixtureDir().resolve("io.safetensors"))) {
            return io.get("input_ids").dup();
        }
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    /**
     * A hybrid with all four block types ({@code M*-EM*}), 3 Mamba heads per group, GQA, chunk_size 4 and MTP
     * {@code *E} with D = 2; {@code repeated} ties the two depths, {@code latent} adds LatentMoE projections and
     * biases on the attention, MLP and Mamba projections.
     */
    static NemotronV3Config hybridConfig(boolean latent) {
        NemotronV3Config c = new NemotronV3Config();
        c.setVocabSize(53);
        c.setHiddenSize(24);
        c.hybridOverridePattern("M*-EM*");
        c.setNumAttentionHeads(4);
        c.setNumKeyValueHeads(2);
        c.setHeadDim(6);
        c.setMambaNumHeads(6);
        c.setMambaHeadDim(4);
        c.setSsmStateSize(8);
        c.setNGroups(2);
        c.setConvKernel(4);
        c.setChunkSize(4);
        c.setIntermediateSize(20);
        c.setNRoutedExperts(5);
        c.setNumExpertsPerTok(2);
        c.setMoeIntermediateSize(12);
        c.setMoeSharedExpertIntermediateSize(10);
        c.setRoutedScalingFactor(1.7);
        if (latent) {
            c.setMoeLatentSize(8);
            c.setAttentionBias(true);
            c.setMlpBias(true);
            c.setUseBias(true);
        }
        c.mtpHybridOverridePattern("*E");
        c.setNumNextnPredictLayers(2);
        c.validate();
        return c;
    }

    static MtpConfig hybridMtp(boolean repeated) {
        return MtpConfig.builder().numLayers(2).layerPattern("*E").useRepeatedLayer(repeated).build();
    }

    /** A randomly initialised double model, re-randomised at the fixture's scales so that every path matters. */
    static NemotronV3ForCausalLM randomHybrid(boolean repeated, boolean latent, long seed) {
        return randomHybrid(hybridConfig(latent), repeated, seed);
    }

    /** {@code config} (a variant of {@link #hybridConfig}) with the random parameters of {@link #randomHybrid}. */
    static NemotronV3ForCausalLM randomHybrid(NemotronV3Config config, boolean repeated, long seed) {
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.create(config, hybridMtp(repeated), DataType.DOUBLE, seed);
        Nd4j.getRandom().setSeed(seed);
        for (Map.Entry<String, INDArray> e : HfStateDictAdapter.parameters(model.graph()).entrySet()) {
            String key = e.getKey();
            INDArray view = e.getValue();
            if (key.endsWith("A_log") || key.endsWith("dt_bias")) {
                continue;
            }
            boolean norm = key.endsWith("norm.weight") || key.endsWith("norm_f.weight")
                    || key.endsWith("final_layernorm.weight");
            double std = key.endsWith(".D") || norm ? 0.1 : key.contains("conv1d.weight") ? 0.3
                    : key.endsWith("e_score_correction_bias") ? 0.05 : key.endsWith(".bias") ? 0.1 : 0.2;
            double mean = key.endsWith(".D") || norm ? 1.0 : 0.0;
            view.assign(Nd4j.randn(view.dataType(), view.shape()).muli(std).addi(mean));
        }
        return model;
    }

    static double maxAbsDiff(INDArray a, INDArray b) {
        return a.castTo(DataType.DOUBLE).sub(b.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
    }

    static int[] row(INDArray ids, int r) {
        return ids.getRow(r).toIntVector();
    }
}
