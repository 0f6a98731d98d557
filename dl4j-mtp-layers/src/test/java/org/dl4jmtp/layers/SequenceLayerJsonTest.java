package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.dl4jmtp.block.BlockConfig;
import org.dl4jmtp.block.NemotronV3BlockLayer;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.graph.DocumentMergeVertex;
import org.dl4jmtp.graph.NemotronV3GraphBuilder;
import org.dl4jmtp.mtp.MtpDepthLayer;
import org.dl4jmtp.mtp.MtpInputIdsPreProcessor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.lossfunctions.LossFunctions;

import java.io.File;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every dl4j-mtp layer type survives DL4J's JSON round trip and {@link ModelSerializer} save/restore.
 */
class SequenceLayerJsonTest {

    private static final int H = 8;
    private static final int V = 11;

    private static int previousMaxThreads;
    private static int previousMaxMasterThreads;

    @BeforeAll
    static void singleThreaded() {
        // tiny arrays: OpenMP threads only add overhead
        previousMaxThreads = Nd4j.getEnvironment().maxThreads();
        previousMaxMasterThreads = Nd4j.getEnvironment().maxMasterThreads();
        Nd4j.getEnvironment().setMaxThreads(1);
        Nd4j.getEnvironment().setMaxMasterThreads(1);
    }

    @AfterAll
    static void restoreThreads() {
        Nd4j.getEnvironment().setMaxThreads(previousMaxThreads);
        Nd4j.getEnvironment().setMaxMasterThreads(previousMaxMasterThreads);
    }

    /** Backbone with all four block types; the default 1e-5 epsilon; (0, +inf) time-step limit. */
    private static NemotronV3Config config() {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(V);
        cfg.setHiddenSize(H);
        cfg.hybridOverridePattern("M*-E");
        cfg.mtpHybridOverridePattern("*E");
        cfg.setNumAttentionHeads(2);
        cfg.setNumKeyValueHeads(1);
        cfg.setHeadDim(4);
        cfg.setMambaNumHeads(2);
        cfg.setMambaHeadDim(2);
        cfg.setSsmStateSize(2);
        cfg.setNGroups(1);
        cfg.setConvKernel(3);
        cfg.setChunkSize(4);
        cfg.setIntermediateSize(8);
        cfg.setNRoutedExperts(4);
        cfg.setNumExpertsPerTok(2);
        cfg.setMoeIntermediateSize(4);
        cfg.setMoeSharedExpertIntermediateSize(4);
        cfg.setMoeLatentSize(4);
        cfg.validate();
        return cfg;
    }

    private static NemotronV3GraphBuilder builder(int depths, boolean repeated) {
        return new NemotronV3GraphBuilder(config())
                .mtp(MtpConfig.builder().numLayers(depths).layerPattern("*E").useRepeatedLayer(repeated).build())
                .head(new RnnOutputLayer.Builder(LossFunctions.LossFunction.MCXENT).activation(Activation.SOFTMAX)
                        .nIn((1L + depths) * H).nOut(V).dataFormat(RNNFormat.NCW).build());
    }

    private static Set<String> layerAndVertexTypes(ComputationGraphConfiguration conf) {
        Set<String> types = new HashSet<>();
        for (GraphVertex v : conf.getVertices().values()) {
            if (v instanceof LayerVertex) {
                LayerVertex lv = (LayerVertex) v;
                types.add(lv.getLayerConf().getLayer().getClass().getSimpleName());
                if (lv.getPreProcessor() != null) {
                    types.add(lv.getPreProcessor().getClass().getSimpleName());
                }
            } else {
                types.add(v.getClass().getSimpleName());
            }
        }
        return types;
    }

    @Test
    void configurationJsonRoundTripIsEqual() {
        for (boolean repeated : new boolean[]{false, true}) {
            ComputationGraphConfiguration conf = builder(2, repeated).buildConfiguration();
            assertTrue(layerAndVertexTypes(conf).containsAll(Set.of(
                    TokenEmbeddingLayer.class.getSimpleName(), MtpInputIdsPreProcessor.class.getSimpleName(),
                    TimeSliceLayer.class.getSimpleName(), NemotronV3BlockLayer.class.getSimpleName(), RmsNormLayer.class.getSimpleName(),
                    (repeated ? MtpDepthLayer.class : LinearLayer.class).getSimpleName(),
                    DocumentMergeVertex.class.getSimpleName(), RnnOutputLayer.class.getSimpleName())),
                    layerAndVertexTypes(conf).toString());

            String json = conf.toJson();
            ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(json);
            assertEquals(conf, back, "repeated=" + repeated);
            assertEquals(json, back.toJson(), "repeated=" + repeated);
            // every block keeps its own settings, not the model's HF config (a Mamba2 block: its +inf time-step limit)
            int mamba = 0;
            for (GraphVertex v : back.getVertices().values()) {
                if (v instanceof LayerVertex && ((LayerVertex) v).getLayerConf().getLayer() instanceof NemotronV3BlockLayer) {
                    BlockConfig b = ((NemotronV3BlockLayer) ((LayerVertex) v).getLayerConf().getLayer()).getBlock();
                    assertEquals(BlockConfig.of(b.getBlockType(), config()), b);
                    if (b.getBlockType() == BlockType.MAMBA) {
                        assertEquals(Double.POSITIVE_INFINITY, b.getMamba2().getTimeStepLimit()[1]);
                        mamba++;
                    }
                }
            }
            assertTrue(mamba > 0, "the graph has Mamba2 blocks");
            assertFalse(json.contains("\"config\""), "no layer stores the model's whole config");
        }
    }

    @Test
    void modelSerializerRestoresIdenticalOutputs(@TempDir Path dir) throws Exception {
        ComputationGraph graph = builder(2, false).dataType(DataType.FLOAT).build();
        Random r = new Random(3);
        INDArray ids = Nd4j.create(DataType.FLOAT, 2, 1, 6);
        for (long i = 0; i < ids.length(); i++) {
            ids.putScalar(i, r.nextInt(V));
        }
        INDArray expected = graph.outputSingle(ids);
        assertEquals(2, expected.size(0));
        assertEquals(V, expected.size(1));

        File file = dir.resolve("model.zip").toFile();
        ModelSerializer.writeModel(graph, file, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(file, true);

        assertEquals(graph.getConfiguration(), restored.getConfiguration());
        assertEquals(graph.params(), restored.params());
        assertEquals(graph.paramTable().keySet(), restored.paramTable().keySet());
        INDArray actual = restored.outputSingle(ids);
        assertEquals(expected, actual);
        // a second call (built SameDiff instances reused) is identical too
        assertEquals(expected, restored.outputSingle(ids));
    }
}
