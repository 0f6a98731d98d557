package org.dl4jmtp.spark;

import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.io.Serializable;
import java.util.Map;

/**
 * Gives a worker's graph the run's step count before its first update of a round. DL4J's Spark workers build their
 * graph from {@code ComputationGraphConfiguration.clone()}, which (in 1.0.0-M2.1) drops the iteration count: without
 * this, every round would start the learning-rate schedule (warm-up, cosine) and Adam's bias correction again at
 * step 0. The driver sets the round's first step before each {@code fit}; the listener travels with the training
 * master to the workers and, at the first forward pass of a graph that is behind, sets its count (the updater reads
 * it after the forward and backward pass).
 */
public final class IterationCountRestorer extends BaseTrainingListener implements Serializable {

    private static final long serialVersionUID = 1L;

    private volatile int stepsDone;

    /** The steps made before the next round (the driver's graph's iteration count). */
    public void roundStartsAfter(int stepsDone) {
        if (stepsDone < 0) {
            throw new IllegalArgumentException("stepsDone must be >= 0, got " + stepsDone);
        }
        this.stepsDone = stepsDone;
    }

    @Override
    public void onForwardPass(Model model, Map<String, INDArray> activations) {
        ComputationGraphConfiguration conf = ((ComputationGraph) model).getConfiguration();
        if (conf.getIterationCount() < stepsDone) {
            conf.setIterationCount(stepsDone);
        }
    }
}
