package org.dl4jmtp.model;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.LayerRuntime;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.NoOp;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Packed documents, in double: a row holding several documents gives every document the logits (main and every MTP
 * depth, at every position) and the gradients it has alone. Mamba2 with the chunk size (4) dividing neither T nor
 * any document length, GQA attention, MoE, an MLP, MTP depths holding Mamba2 and attention, repeated (weight-tied)
 * and not, in both runtimes.
 */
class DocumentIsolationTest {

    private static final int V = 11;
    /** Document lengths of each row (T = 14): row 0 splits 5 | 6 | 3, row 1 9 | 5. */
    private static final int[][] LENGTHS = {{5, 6, 3}, {9, 5}};
    private static final int T = 14;

    @BeforeAll
    static void doublePrecision() {
        MtpGradientCheckTest.doublePrecision();
    }

    @AfterAll
    static void restorePrecision() {
        MtpGradientCheckTest.restorePrecision();
    }

    static Stream<Arguments> cases() {
        return Stream.of(Arguments.of(LayerRuntime.EXPLICIT, false), Arguments.of(LayerRuntime.EXPLICIT, true),
                Arguments.of(LayerRuntime.SAMEDIFF, false), Arguments.of(LayerRuntime.SAMEDIFF, true));
    }

    private static NemotronV3ForCausalLM model(LayerRuntime runtime, boolean repeated) {
        NemotronV3Config cfg = MtpGradientCheckTest.tinyConfig("M*ME-", "M*", repeated ? 1 : 2);
        MtpConfig mtp = MtpGradientCheckTest.mtp(2, "M*", repeated, MtpLossNormalization.MAIN_LABEL_COUNT);
        ComputationGraph graph = NemotronV3ForCausalLM.graphBuilder(cfg, mtp, true)
                .dataType(DataType.DOUBLE).updater(new NoOp()).seed(23).runtime(runtime).build();
        Nd4j.getRandom().setSeed(29);
        graph.params().addi(Nd4j.randn(DataType.DOUBLE, graph.params().shape()).muli(0.05));
        return NemotronV3ForCausalLM.of(cfg, mtp, graph);
    }

    private static INDArray ids() {
        Random random = new Random(5);
        INDArray ids = Nd4j.create(DataType.LONG, LENGTHS.length, T);
        for (int b = 0; b < LENGTHS.length; b++) {
            for (int t = 0; t < T; t++) {
                ids.putScalar(b, t, 1 + random.nextInt(V - 1));
            }
        }
        return ids;
    }

    /** Document ids that are not 0, 1, 2 and come back to an earlier value: only changes along the row count. */
    private static INDArray documentIds() {
        long[] values = {7, 3, 7};
        INDArray docs = Nd4j.create(DataType.LONG, LENGTHS.length, T);
        for (int b = 0; b < LENGTHS.length; b++) {
            int t = 0;
            for (int d = 0; d < LENGTHS[b].length; d++) {
                for (int i = 0; i < LENGTHS[b][d]; i++) {
                    docs.putScalar(b, t++, values[d]);
                }
            }
        }
        return docs;
    }

    /** Pre-shifted labels inside each document: the next token, -100 at each document's last position. */
    private static INDArray labels(INDArray ids, int[] lengths) {
        INDArray labels = Nd4j.valueArrayOf(ids.shape(), -100L, DataType.LONG);
        int start = 0;
        for (int length : lengths) {
            for (int t = start; t < start + length - 1; t++) {
                labels.putScalar(0, t, ids.getLong(0, t + 1));
            }
            start += length;
        }
        return labels;
    }

    private static INDArray span(INDArray a, int b, int from, int length) {
        return a.get(NDArrayIndex.interval(b, b + 1), NDArrayIndex.interval(from, from + length)).dup();
    }

    private static INDArray positions(INDArray logits, int b, int from, int length) {
        return logits.get(NDArrayIndex.point(b), NDArrayIndex.interval(from, from + length), NDArrayIndex.all());
    }

    @ParameterizedTest(name = "{0}, repeated={1}")
    @MethodSource("cases")
    void everyDocumentHasItsLogitsAlone(LayerRuntime runtime, boolean repeated) {
        NemotronV3ForCausalLM model = model(runtime, repeated);
        INDArray ids = ids();
        NemotronV3ForCausalLM.ForwardResult packed = model.forward(ids, documentIds());
        NemotronV3ForCausalLM.ForwardResult unisolated = model.forward(ids);
        for (int b = 0; b < LENGTHS.length; b++) {
            int start = 0;
            for (int length : LENGTHS[b]) {
                NemotronV3ForCausalLM.ForwardResult alone = model.forward(span(ids, b, start, length));
                String where = runtime + " row " + b + " document at " + start;
                assertClose(alone.mainLogits().get(NDArrayIndex.point(0)), positions(packed.mainLogits(), b, start,
                        length), 1e-10, where + ", main");
                for (int d = 0; d < alone.mtpLogits().size(); d++) {
                    // every position, including those whose depth input would have left the document (token 0)
                    assertClose(alone.mtpLogits().get(d).get(NDArrayIndex.point(0)),
                            positions(packed.mtpLogits().get(d), b, start, length), 1e-10, where + ", depth " + (d + 1));
                }
                start += length;
            }
        }
        // and isolation changes something: a later document seen with the earlier one differs
        double leak = unisolated.mainLogits().sub(packed.mainLogits()).amaxNumber().doubleValue();
        assertTrue(leak > 1e-3, "without document ids the second document sees the first (difference " + leak + ")");
    }

    @ParameterizedTest(name = "{0}, repeated={1}")
    @MethodSource("cases")
    void packedGradientIsTheLabelWeightedSumOfTheDocumentsAlone(LayerRuntime runtime, boolean repeated) {
        NemotronV3ForCausalLM model = model(runtime, repeated);
        INDArray ids = ids();
        INDArray labels = Nd4j.create(DataType.LONG, ids.shape());
        for (int b = 0; b < LENGTHS.length; b++) {
            labels.get(NDArrayIndex.point(b), NDArrayIndex.all()).assign(labels(span(ids, b, 0, T), LENGTHS[b]));
        }
        Map<String, INDArray> packed = model.gradients(ids, labels, documentIds());

        // main-label normalisation: loss = Σ_docs (N_doc / N) · loss_doc
        long total = labels.gte(0).castTo(DataType.INT).sumNumber().longValue();
        Map<String, INDArray> expected = new HashMap<>();
        for (int b = 0; b < LENGTHS.length; b++) {
            int start = 0;
            for (int length : LENGTHS[b]) {
                INDArray docIds = span(ids, b, start, length);
                INDArray docLabels = labels(docIds, new int[]{length});
                double share = (double) (length - 1) / total;
                model.gradients(docIds, docLabels).forEach((key, g) ->
                        expected.merge(key, g.mul(share), INDArray::add));
                start += length;
            }
        }
        assertEquals(expected.keySet(), packed.keySet());
        expected.forEach((key, g) -> assertClose(g, packed.get(key), 1e-10, runtime + " gradient of " + key));
    }

    @Test
    void documentIdsOfAnotherShapeAreRefused() {
        NemotronV3ForCausalLM model = model(LayerRuntime.EXPLICIT, false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> model.forward(ids(), Nd4j.zeros(DataType.LONG, 2, T - 1)));
        assertTrue(e.getMessage().contains("document ids") && e.getMessage().contains("[2, 14]"), e.getMessage());
    }

    @Test
    void aLossHeadWithoutDocumentIdsRefusesThemWithMtp() {
        NemotronV3Config cfg = MtpGradientCheckTest.tinyConfig("M*", "*", 1);
        MtpConfig mtp = MtpGradientCheckTest.mtp(1, "*", false, MtpLossNormalization.MAIN_LABEL_COUNT);
        NemotronV3ForCausalLM model = NemotronV3ForCausalLM.of(cfg, mtp, NemotronV3ForCausalLM.graphBuilder(cfg, mtp)
                .dataType(DataType.DOUBLE).build());
        INDArray ids = ids();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> model.loss(ids, ids, documentIds()));
        assertTrue(e.getMessage().contains("does not read document ids"), e.getMessage());
    }

    private static void assertClose(INDArray expected, INDArray actual, double tolerance, String what) {
        assertEquals(java.util.Arrays.toString(expected.shape()), java.util.Arrays.toString(actual.shape()), what);
        double diff = expected.sub(actual).amaxNumber().doubleValue();
        assertTrue(diff <= tolerance, what + ": max |difference| " + diff);
    }
}
