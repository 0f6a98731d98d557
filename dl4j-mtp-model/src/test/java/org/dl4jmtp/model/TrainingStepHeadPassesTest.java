package org.dl4jmtp.model;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.losses.MtpLossRuntimeLayer;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A training step computes the LM head and its loss once: the score comes from the backprop computation
 * ({@code MtpLossRuntimeLayer}), not from a second pass.
 */
class TrainingStepHeadPassesTest {

    @Test
    void trainingStepRunsTheHeadOnceAndScoresLikeAPlainScoringPass() throws Exception {
        ComputationGraph graph = TinyHybridFixture.load(DataType.DOUBLE).graph();
        MtpLossRuntimeLayer head = (MtpLossRuntimeLayer) graph.getLayer(GraphNames.LM_HEAD);
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            INDArray ids = TokenIds.toGraphInput(io.get("input_ids"), 97, DataType.DOUBLE);
            INDArray labels = TokenIds.toGraphLabels(io.get("labels"), 97, DataType.DOUBLE);
            MultiDataSet batch = new MultiDataSet(ids, labels);
            long before = head.headPasses();
            double scored = graph.score(batch, true);
            assertEquals(before + 1, head.headPasses(), "head passes of a scoring pass");

            graph.setInputs(ids);
            graph.setLabels(labels);
            graph.computeGradientAndScore();
            assertEquals(before + 2, head.headPasses(), "head passes of a training step");
            assertEquals(scored, graph.score(), 1e-12, "score of the training step");

            graph.score(batch, true);      // a later scoring pass is not served from the training step's result
            assertEquals(before + 3, head.headPasses(), "head passes of the next scoring pass");
        }
    }
}
