package org.dl4jmtp.model;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossRuntimeLayer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link DataParallelGraph} trains exactly like a plain graph: the same Adam steps on the same batches (double
 * precision, all four block types, MTP D = 2, ignored labels spread unevenly over the slices, uneven slice sizes,
 * more replicas than rows; the optimizer step shared out between threads) give the same parameters, scores and per-depth reports, for both loss normalisations (the per-depth one exercises
 * the exact whole-batch recomputation when the slices' label counts do not split proportionally), and with packed
 * documents (their ids in the input mask and the labels, split with the batch).
 */
class DataParallelGraphTest {

    private static final int T = 12;

    @ParameterizedTest
    @CsvSource({"MAIN_LABEL_COUNT, 3, 5, false", "PER_DEPTH_COUNT, 2, 3, false", "MAIN_LABEL_COUNT, 4, 2, false",
            "MAIN_LABEL_COUNT, 2, 3, true"})
    void matchesSerialTraining(MtpLossNormalization normalization, int replicas, int batch, boolean documents) {
        NemotronV3Config cfg = TrainingSmokeTest.tinyConfig();
        MtpConfig mtp = MtpConfig.builder().numLayers(2).layerPattern("*E").lossScalingFactor(0.3)
                .lossNormalization(normalization).build();
        ComputationGraph serial = NemotronV3ForCausalLM.graphBuilder(cfg, mtp, documents)
                .dataType(DataType.DOUBLE).seed(7).updater(new Adam(1e-2)).build();
        serial.fit(batch(new Random(1), batch, cfg.getVocabSize(), documents));  // non-trivial updater state to carry over
        DataParallelGraph parallel = DataParallelGraph.of(serial, replicas);
        assertEquals(serial.params(), parallel.params());
        assertInstanceOf(ParallelBlockUpdater.class, parallel.getUpdater(), "the optimizer step runs on the replicas' threads");

        Random random = new Random(2);
        for (int step = 0; step < 3; step++) {
            MultiDataSet data = batch(random, batch, cfg.getVocabSize(), documents);
            serial.fit(data);
            parallel.fit(data);
            assertEquals(serial.score(), parallel.score(), 1e-12, "score at step " + step);
            assertReportsEqual(report(serial), report(parallel));
            double maxDiff = serial.params().sub(parallel.params()).amaxNumber().doubleValue();
            assertTrue(maxDiff < 1e-12, "parameters differ by " + maxDiff + " after step " + step);
        }
        assertEquals(serial.getIterationCount(), parallel.getIterationCount());
    }

    /** Random ids; labels with ignored (-100) positions, more of them in the first rows than in the others. */
    private static MultiDataSet batch(Random random, int batch, int vocab, boolean documents) {
        double[][][] ids = new double[batch][1][T];
        double[][][] labels = new double[batch][documents ? 2 : 1][T];
        double[][] documentIds = new double[batch][T];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t < T; t++) {
                ids[b][0][t] = random.nextInt(vocab);
                labels[b][0][t] = t < 4 - b ? -100 : random.nextInt(vocab);
                documentIds[b][t] = t < 3 + 2 * b ? 0 : 1;      // a boundary at another place in every row
                if (documents) {
                    labels[b][1][t] = documentIds[b][t];
                }
            }
        }
        labels[batch - 1][0][T - 1] = -100;
        return new MultiDataSet(new INDArray[]{Nd4j.create(ids)}, new INDArray[]{Nd4j.create(labels)},
                documents ? new INDArray[]{Nd4j.create(documentIds)} : null, null);
    }

    private static MtpLossReport report(ComputationGraph graph) {
        return ((MtpLossRuntimeLayer) graph.getLayer(GraphNames.LM_HEAD)).lastReport();
    }

    private static void assertReportsEqual(MtpLossReport expected, MtpLossReport actual) {
        assertArrayEquals(expected.labelCounts(), actual.labelCounts());
        assertArrayEquals(expected.depthLosses(), actual.depthLosses(), 1e-12);
        assertEquals(expected.totalLoss(), actual.totalLoss(), 1e-12);
    }
}
