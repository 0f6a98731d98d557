package org.dl4jmtp.losses;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.samediff.SameDiffOutputLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link MtpLossRuntimeLayer} (plain ND4J ops, explicit gradient) against DL4J's own SameDiff runtime executing
 * {@link MtpLossLayer}'s SameDiff definition ({@link MtpLossMath}) on the same parameters, in double precision: score,
 * lm_head gradient, input gradient and main logits, for D = 0…3, both normalisations, λ = 0, ignored labels and
 * document ids (including a document that resumes after another). Bad labels and inputs are rejected by name.
 */
class MtpLossLayerEquivalenceTest {

    private static final int H = 4;
    private static final int V = 9;
    private static final int MB = 3;
    private static final int T = 7;
    private static final LayerWorkspaceMgr NO_WS = LayerWorkspaceMgr.noWorkspaces();

    private static DataType previousDefault;
    private static DataType previousFloat;

    @BeforeAll
    static void doublePrecision() {
        previousDefault = Nd4j.dataType();
        previousFloat = Nd4j.defaultFloatingPointType();
        Nd4j.setDefaultDataTypes(DataType.DOUBLE, DataType.DOUBLE);
    }

    @AfterAll
    static void restorePrecision() {
        Nd4j.setDefaultDataTypes(previousDefault, previousFloat);
    }

    private static MtpLossLayer conf(int depths, double lambda, MtpLossNormalization normalization, boolean documents) {
        MtpConfig mtp = depths == 0 ? MtpConfig.disabled() : MtpConfig.builder().numLayers(depths).layerPattern("-")
                .lossScalingFactor(lambda).lossNormalization(normalization).build();
        MtpLossLayer conf = new MtpLossLayer.Builder().hiddenSize(H).vocabSize(V).mtp(mtp)
                .documentIdsInLabels(documents).build();
        conf.setLayerName("lm_head");
        return conf;
    }

    /** Our runtime and DL4J's SameDiff runtime on one parameter array. */
    private static final class Runtimes {
        final MtpLossRuntimeLayer ours;
        final SameDiffOutputLayer reference;

        Runtimes(MtpLossLayer conf, long seed) {
            NeuralNetConfiguration nnc = new NeuralNetConfiguration.Builder().dataType(DataType.DOUBLE).layer(conf).build();
            long n = conf.initializer().numParams(nnc);
            INDArray params = Nd4j.create(DataType.DOUBLE, 1, n);
            ours = (MtpLossRuntimeLayer) conf.instantiate(nnc, null, 0, params, true, DataType.DOUBLE);
            params.assign(Nd4j.randn(seed, new long[]{1, n}).castTo(DataType.DOUBLE));
            reference = new SameDiffOutputLayer(nnc, DataType.DOUBLE);
            reference.setParamsViewArray(params);
            reference.setParamTable(conf.initializer().init(nnc, params, false));
            ours.setBackpropGradientsViewArray(Nd4j.create(DataType.DOUBLE, 1, n));
            reference.setBackpropGradientsViewArray(Nd4j.create(DataType.DOUBLE, 1, n));
        }
    }

    private static INDArray labels(long seed, boolean documents, boolean allIgnored) {
        Random r = new Random(seed);
        INDArray labels = Nd4j.create(DataType.DOUBLE, MB, documents ? 2 : 1, T);
        double[][] docs = {{0, 0, 0, 1, 1, 1, 2}, {5, 5, 6, 5, 5, 5, 5}, {3, 3, 3, 3, 3, 3, 3}};
        for (int b = 0; b < MB; b++) {
            for (int t = 0; t < T; t++) {
                boolean ignore = allIgnored || r.nextInt(5) == 0;
                labels.putScalar(new long[]{b, 0, t}, ignore ? -100 : r.nextInt(V));
                if (documents) {
                    labels.putScalar(new long[]{b, 1, t}, docs[b][t]);
                }
            }
        }
        return labels;
    }

    private static void assertSame(MtpLossLayer conf, long seed, boolean allIgnored) {
        Runtimes layers = new Runtimes(conf, seed);
        INDArray input = Nd4j.randn(seed + 1, new long[]{MB, (long) (conf.getDepths() + 1) * H, T}).castTo(DataType.DOUBLE);
        INDArray labels = labels(seed + 2, conf.isDocumentIdsInLabels(), allIgnored);
        String what = "D=" + conf.getDepths() + " λ=" + conf.getLossScalingFactor() + " " + conf.getNormalization()
                + (conf.isDocumentIdsInLabels() ? " with document ids" : "") + (allIgnored ? ", all ignored" : "");

        layers.ours.setInput(input, NO_WS);
        layers.ours.setLabels(labels);
        layers.reference.setInput(input, NO_WS);
        layers.reference.setLabels(labels);
        assertClose(layers.reference.activate(false, NO_WS), layers.ours.activate(false, NO_WS), what + ": main logits");
        assertEquals(layers.reference.computeScore(0.25, true, NO_WS), layers.ours.computeScore(0.25, true, NO_WS),
                1e-12, what + ": score");
        assertEquals(layers.ours.lastReport().totalLoss() + 0.25 / MB, layers.ours.computeScore(0.25, true, NO_WS),
                1e-12, what + ": report total");

        Pair<Gradient, INDArray> expected = layers.reference.backpropGradient(null, NO_WS);
        Pair<Gradient, INDArray> actual = layers.ours.backpropGradient(null, NO_WS);
        assertClose(expected.getSecond(), actual.getSecond(), what + ": input gradient");
        assertClose(expected.getFirst().getGradientFor(MtpLossLayer.WEIGHT),
                actual.getFirst().getGradientFor(MtpLossLayer.WEIGHT), what + ": lm_head.weight gradient");
        assertEquals(layers.reference.computeScore(0, true, NO_WS), layers.ours.computeScore(0, true, NO_WS), 1e-12,
                what + ": score after backprop");
    }

    private static void assertClose(INDArray expected, INDArray actual, String what) {
        assertEquals(java.util.Arrays.toString(expected.shape()), java.util.Arrays.toString(actual.shape()), what);
        double scale = Math.max(1e-3, expected.amaxNumber().doubleValue());
        double error = expected.sub(actual).amaxNumber().doubleValue();
        assertTrue(error <= 1e-12 * scale, what + ": max |difference| " + error + " (scale " + scale + ")");
    }

    @Test
    void matchesTheSameDiffDefinitionForEveryDepthAndNormalisation() {
        for (int depths = 0; depths <= 3; depths++) {
            for (MtpLossNormalization norm : MtpLossNormalization.values()) {
                assertSame(conf(depths, 0.3, norm, false), 10 + depths, false);
            }
        }
    }

    @Test
    void matchesTheSameDiffDefinitionWithDocumentIds() {
        for (MtpLossNormalization norm : MtpLossNormalization.values()) {
            assertSame(conf(2, 0.3, norm, true), 20, false);
            assertSame(conf(3, 0.1, norm, true), 21, false);
        }
    }

    @Test
    void matchesTheSameDiffDefinitionWithoutMtpWeightOrLabels() {
        assertSame(conf(2, 0.0, MtpLossNormalization.MAIN_LABEL_COUNT, false), 30, false);
        assertSame(conf(2, 0.3, MtpLossNormalization.PER_DEPTH_COUNT, false), 31, true);
    }

    @Test
    void rejectsLabelsOutsideTheVocabularyAndBadShapes() {
        Runtimes layers = new Runtimes(conf(1, 0.3, MtpLossNormalization.MAIN_LABEL_COUNT, false), 40);
        INDArray input = Nd4j.randn(41, new long[]{MB, 2 * H, T}).castTo(DataType.DOUBLE);
        layers.ours.setInput(input, NO_WS);
        for (double bad : new double[]{V, -1, 2.5}) {
            INDArray labels = labels(42, false, false);
            labels.putScalar(new long[]{1, 0, 3}, bad);
            layers.ours.setLabels(labels);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> layers.ours.computeScore(0, false, NO_WS));
            assertTrue(e.getMessage().contains("label " + bad + " at [1, 3]"), e.getMessage());
        }
        layers.ours.setLabels(labels(43, true, false));
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                () -> layers.ours.backpropGradient(null, NO_WS));
        assertTrue(shape.getMessage().contains("labels must be [3, 1, 7]"), shape.getMessage());

        layers.ours.setInput(Nd4j.randn(44, new long[]{MB, H, T}).castTo(DataType.DOUBLE), NO_WS);
        layers.ours.setLabels(labels(45, false, false));
        IllegalArgumentException width = assertThrows(IllegalArgumentException.class,
                () -> layers.ours.computeScore(0, false, NO_WS));
        assertTrue(width.getMessage().contains("expects input [mb, 8, T]"), width.getMessage());
    }
}
