package org.dl4jmtp.model;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.dataset.MultiDataSet;

import java.lang.reflect.Field;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A training step runs the LM head's forward pass once: the score comes from the backprop execution
 * ({@code MtpLossRuntimeLayer}), not from a second pass. Counted as log-softmax executions in the head's SameDiff.
 */
class TrainingStepHeadPassesTest {

    @Test
    void trainingStepRunsTheHeadOnceAndScoresLikeAPlainScoringPass() throws Exception {
        ComputationGraph graph = TinyHybridFixture.load(DataType.DOUBLE).graph();
        try (SafetensorsCheckpoint io = TinyHybridFixture.io()) {
            INDArray ids = TokenIds.toGraphInput(io.get("input_ids"), 97, DataType.DOUBLE);
            INDArray labels = TokenIds.toGraphLabels(io.get("labels"), 97, DataType.DOUBLE);
            MultiDataSet batch = new MultiDataSet(ids, labels);
            double scored = graph.score(batch, true);              // initialises the head's SameDiff

            LogSoftmaxCounter counter = new LogSoftmaxCounter();
            sameDiffOf(graph.getLayer(GraphNames.LM_HEAD)).addListeners(counter);
            graph.score(batch, true);
            int perScoringPass = counter.count;
            assertTrue(perScoringPass > 0, "the counter sees the head's log-softmax");

            counter.count = 0;
            graph.setInputs(ids);
            graph.setLabels(labels);
            graph.computeGradientAndScore();
            assertEquals(perScoringPass, counter.count, "log-softmax executions in one training step");
            assertEquals(scored, graph.score(), 1e-12, "score of the training step");
        }
    }

    private static final class LogSoftmaxCounter extends BaseListener {
        int count;

        @Override
        public boolean isActive(Operation operation) {
            return true;
        }

        @Override
        public void preOpExecution(SameDiff sd, At at, SameDiffOp op, OpContext opContext) {
            if ("log_softmax".equals(op.getOp().opName())) {
                count++;
            }
        }
    }

    private static SameDiff sameDiffOf(Layer layer) throws ReflectiveOperationException {
        for (Class<?> c = layer.getClass(); c != null; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField("sameDiff");
                f.setAccessible(true);
                return (SameDiff) f.get(layer);
            } catch (NoSuchFieldException e) {
                // declared higher up
            }
        }
        throw new NoSuchFieldException("sameDiff");
    }
}
