package org.dl4jmtp.layers;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.samediff.SameDiffLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.mtp.MtpDepthLayer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The explicit runtimes of {@link RmsNormLayer}, {@link LinearLayer}, {@link TimeSliceLayer} and {@link MtpDepthLayer}
 * against DL4J's own
 * SameDiff runtime executing the same configuration's SameDiff definition, in double precision: output, input
 * gradient and every parameter gradient for a random output gradient. (The layers inside whole graphs are also
 * gradient-checked in {@code LayerGradientCheckTest} and {@code MtpGradientCheckTest}.)
 */
@ExtendWith(DoublePrecisionSingleThread.class)
class ExplicitSequenceLayerTest {

    private static final LayerWorkspaceMgr NO_WS = LayerWorkspaceMgr.noWorkspaces();
    private static final int MB = 3;

    private static void assertSameAsSameDiff(SequenceSameDiffLayer conf, long inputSize, long outputSize, long t,
                                             long seed) {
        conf.setLayerName("layer");
        NeuralNetConfiguration nnc = new NeuralNetConfiguration.Builder().dataType(DataType.DOUBLE).layer(conf).build();
        long n = conf.initializer().numParams(nnc);
        INDArray params = n > 0 ? Nd4j.create(DataType.DOUBLE, 1, n) : null;      // as a graph passes them
        Layer ours = conf.instantiate(nnc, null, 0, params, true, DataType.DOUBLE);
        assertInstanceOf(ExplicitSequenceLayer.class, ours);
        if (n > 0) {
            params.assign(Nd4j.randn(seed, new long[]{1, n}).castTo(DataType.DOUBLE));
        }
        SameDiffLayer reference = new SameDiffLayer(nnc, DataType.DOUBLE);
        reference.setParamsViewArray(params);
        reference.setParamTable(conf.initializer().init(nnc, params, false));
        ours.setBackpropGradientsViewArray(n > 0 ? Nd4j.create(DataType.DOUBLE, 1, n) : null);
        reference.setBackpropGradientsViewArray(n > 0 ? Nd4j.create(DataType.DOUBLE, 1, n) : null);

        INDArray input = Nd4j.randn(seed + 1, new long[]{MB, inputSize, t}).castTo(DataType.DOUBLE);
        INDArray epsilon = Nd4j.randn(seed + 2, new long[]{MB, outputSize, t / (conf instanceof TimeSliceLayer
                ? ((TimeSliceLayer) conf).getParts() : 1)}).castTo(DataType.DOUBLE);
        String what = conf.getClass().getSimpleName();
        ours.setInput(input, NO_WS);
        reference.setInput(input, NO_WS);
        assertClose(reference.activate(true, NO_WS), ours.activate(true, NO_WS), what + " output");
        Pair<Gradient, INDArray> expected = reference.backpropGradient(epsilon, NO_WS);
        Pair<Gradient, INDArray> actual = ours.backpropGradient(epsilon, NO_WS);
        assertClose(expected.getSecond(), actual.getSecond(), what + " input gradient");
        Map<String, INDArray> expectedGradients = expected.getFirst().gradientForVariable();
        assertEquals(expectedGradients.keySet(), actual.getFirst().gradientForVariable().keySet(), what + " keys");
        for (Map.Entry<String, INDArray> e : expectedGradients.entrySet()) {
            assertClose(e.getValue(), actual.getFirst().getGradientFor(e.getKey()), what + " gradient of " + e.getKey());
        }
    }

    private static void assertClose(INDArray expected, INDArray actual, String what) {
        assertEquals(Arrays.toString(expected.shape()), Arrays.toString(actual.shape()), what + " shape");
        double scale = Math.max(1e-3, expected.amaxNumber().doubleValue());
        double error = expected.sub(actual).amaxNumber().doubleValue();
        assertFalse(Double.isNaN(error), what + ": NaN");
        assertTrue(error <= 1e-12 * scale, what + ": max |difference| " + error + " (scale " + scale + ")");
    }

    @Test
    void rmsNormMatchesItsSameDiffDefinition() {
        assertSameAsSameDiff(new RmsNormLayer.Builder().size(6).epsilon(1e-5).build(), 6, 6, 5, 1);
        assertSameAsSameDiff(new RmsNormLayer.Builder().size(3).epsilon(0.5).build(), 3, 3, 1, 2);
    }

    @Test
    void linearMatchesItsSameDiffDefinition() {
        assertSameAsSameDiff(new LinearLayer.Builder().nIn(6).nOut(4).std(0.5).build(), 6, 4, 5, 3);
        assertSameAsSameDiff(new LinearLayer.Builder().nIn(2).nOut(7).std(0.5).build(), 2, 7, 3, 4);
    }

    @Test
    void timeSliceMatchesItsSameDiffDefinition() {
        for (int index = 0; index < 3; index++) {
            assertSameAsSameDiff(new TimeSliceLayer("slice", 4, 3, index), 4, 4, 12, 5 + index);
        }
        assertSameAsSameDiff(new TimeSliceLayer("slice", 2, 1, 0), 2, 2, 5, 9);
    }

    /** The weight-tied depth (3 iterations) with an attention and a MoE sublayer, and an ordinary one-iteration depth. */
    @Test
    void mtpDepthMatchesItsSameDiffDefinition() {
        NemotronV3Config cfg = mtpConfig();
        assertSameAsSameDiff(new MtpDepthLayer.Builder().config(cfg).iterations(3)
                .sublayerTypes(List.of(BlockType.ATTENTION, BlockType.MOE)).build(), 4 * H, 3 * H, 5, 10);
        assertSameAsSameDiff(new MtpDepthLayer.Builder().config(cfg).iterations(1)
                .sublayerTypes(List.of(BlockType.MAMBA, BlockType.MLP)).build(), 2 * H, H, 4, 11);
    }

    /** A backprop whose forward pass was not the training one recomputes it and gets the same gradients. */
    @Test
    void mtpDepthBackpropWithoutItsForwardPassRecomputesIt() {
        MtpDepthLayer conf = new MtpDepthLayer.Builder().config(mtpConfig()).iterations(2)
                .sublayerTypes(List.of(BlockType.MOE)).build();
        conf.setLayerName("mtp.depth.0");
        NeuralNetConfiguration nnc = new NeuralNetConfiguration.Builder().dataType(DataType.DOUBLE).layer(conf).build();
        long n = conf.initializer().numParams(nnc);
        INDArray params = Nd4j.randn(12, new long[]{1, n}).castTo(DataType.DOUBLE);
        Layer layer = conf.instantiate(nnc, null, 0, params, false, DataType.DOUBLE);
        layer.setBackpropGradientsViewArray(Nd4j.create(DataType.DOUBLE, 1, n));
        INDArray input = Nd4j.randn(13, new long[]{MB, 3 * H, 4}).castTo(DataType.DOUBLE);
        INDArray epsilon = Nd4j.randn(14, new long[]{MB, 2 * H, 4}).castTo(DataType.DOUBLE);
        layer.setInput(input, NO_WS);
        layer.activate(true, NO_WS);
        INDArray cachedInputGradient = layer.backpropGradient(epsilon, NO_WS).getSecond().dup();
        INDArray cachedGradient = layer.getGradientsViewArray().dup();
        layer.setInput(input.dup(), NO_WS);
        assertClose(cachedInputGradient, layer.backpropGradient(epsilon, NO_WS).getSecond(), "input gradient");
        assertClose(cachedGradient, layer.getGradientsViewArray(), "parameter gradients");
    }

    private static final int H = 6;

    private static NemotronV3Config mtpConfig() {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(7);
        cfg.setHiddenSize(H);
        cfg.hybridOverridePattern("M*-E");
        cfg.setNumAttentionHeads(2);
        cfg.setNumKeyValueHeads(1);
        cfg.setHeadDim(3);
        cfg.setMambaNumHeads(2);
        cfg.setMambaHeadDim(2);
        cfg.setSsmStateSize(3);
        cfg.setNGroups(1);
        cfg.setConvKernel(3);
        cfg.setChunkSize(2);
        cfg.setIntermediateSize(5);
        cfg.setNRoutedExperts(4);
        cfg.setNumExpertsPerTok(2);
        cfg.setMoeIntermediateSize(4);
        cfg.setMoeSharedExpertIntermediateSize(3);
        cfg.validate();
        return cfg;
    }

    @Test
    void timeSliceRejectsATimeAxisThatDoesNotSplitEvenly() {
        TimeSliceLayer conf = new TimeSliceLayer("backbone.embeddings.part.1", 4, 3, 1);
        NeuralNetConfiguration nnc = new NeuralNetConfiguration.Builder().dataType(DataType.DOUBLE).layer(conf).build();
        Layer layer = conf.instantiate(nnc, null, 0, null, true, DataType.DOUBLE);
        layer.setInput(Nd4j.rand(DataType.DOUBLE, MB, 4, 10), NO_WS);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> layer.activate(false, NO_WS));
        assertTrue(e.getMessage().contains("backbone.embeddings.part.1") && e.getMessage().contains("10 steps"),
                e.getMessage());
    }

    @Test
    void rmsNormRejectsAWrongFeatureSize() {
        RmsNormLayer conf = new RmsNormLayer.Builder().size(6).build();
        conf.setLayerName("backbone.norm_f");
        NeuralNetConfiguration nnc = new NeuralNetConfiguration.Builder().dataType(DataType.DOUBLE).layer(conf).build();
        Layer layer = conf.instantiate(nnc, null, 0, Nd4j.ones(DataType.DOUBLE, 1, 6), false, DataType.DOUBLE);
        layer.setInput(Nd4j.rand(DataType.DOUBLE, MB, 5, 4), NO_WS);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> layer.activate(false, NO_WS));
        assertTrue(e.getMessage().contains("backbone.norm_f") && e.getMessage().contains("[mb, 6, T]"), e.getMessage());
    }
}
