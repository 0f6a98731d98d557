package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.block.NemotronV3BlockLayer;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.lossfunctions.LossFunctions;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Shapes a native BLAS call cannot take are refused before the call, naming the array, its shape and the layer. */
class NativeLimitsTest {

    @Test
    void acceptsUpToTwoToTheThirtyOneMinusOneElements() {
        assertDoesNotThrow(() -> NativeLimits.check("a", Integer.MAX_VALUE));
        assertDoesNotThrow(() -> NativeLimits.check("a", 46_340, 46_340));
        NativeLimits.ShapeLimitException e = assertThrows(NativeLimits.ShapeLimitException.class,
                () -> NativeLimits.check("attention scores [B, heads, T, T]", 1, 2, 32_768, 32_768));
        assertTrue(e.getMessage().contains("attention scores [B, heads, T, T] [1, 2, 32768, 32768]"), e.getMessage());
        assertTrue(e.getMessage().contains("2,147,483,648 elements") && e.getMessage().contains("2,147,483,647"),
                e.getMessage());
        // a product beyond Long.MAX_VALUE is refused too, not wrapped round to a small number
        assertThrows(NativeLimits.ShapeLimitException.class, () -> NativeLimits.check("huge", 1L << 40, 1L << 40));
    }

    /** An MLP block whose up-projection output [n, I] would exceed the limit: refused before anything is allocated. */
    @Test
    void explicitBlockRefusesAnOversizedProductNamingTheLayer() {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(16);
        cfg.setHiddenSize(2);
        cfg.hybridOverridePattern("-");
        cfg.setIntermediateSize(1 << 19);                 // n = 4,096 rows · 524,288 = 2^31 elements
        cfg.validate();
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().dataType(DataType.FLOAT)
                .graphBuilder().addInputs("in")
                .addLayer("backbone.layers.0", new NemotronV3BlockLayer.Builder().config(cfg).blockType(BlockType.MLP)
                        .build(), "in")
                .addLayer("out", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MCXENT)
                        .activation(Activation.SOFTMAX).nIn(2).nOut(3).dataFormat(RNNFormat.NCW).build(),
                        "backbone.layers.0")
                .setOutputs("out").build();
        ComputationGraph graph = new ComputationGraph(conf);
        graph.init();
        NativeLimits.ShapeLimitException e = assertThrows(NativeLimits.ShapeLimitException.class,
                () -> graph.output(Nd4j.zeros(DataType.FLOAT, 1, 2, 4_096)));
        assertTrue(e.getMessage().startsWith("Layer backbone.layers.0: "), e.getMessage());
        assertTrue(e.getMessage().contains("[4096, 524288]"), e.getMessage());
    }
}
