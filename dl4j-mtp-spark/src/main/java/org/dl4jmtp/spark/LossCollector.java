package org.dl4jmtp.spark;

import org.apache.spark.TaskContext;
import org.apache.spark.util.CollectionAccumulator;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossReporting;

import java.io.Serializable;

/**
 * A training listener that travels with the training master to every worker and sends each step's MTP loss report
 * (main and per-depth losses) back to the driver through a Spark accumulator; the driver reads the accumulator after
 * each {@code fit} and logs the steps (the training score alone would lose the per-depth losses).
 *
 * <p>Spark reports what a task added to its copy of an accumulator when the task ends. Parameter averaging builds a
 * fresh model with the round's listeners in every task; shared training keeps the model of the first round, with its
 * listeners, for the whole run: a listener whose own task has ended writes to the copy of the newest task of its JVM
 * (which, in shared training, lives until the round's training is done), so the reports of a long-lived model reach
 * the driver through the current round's tasks.
 */
public final class LossCollector extends BaseTrainingListener implements Serializable {

    private static final long serialVersionUID = 1L;

    private final CollectionAccumulator<WorkerLosses> sink;
    /** The accumulator copy of the newest task of this JVM (null on the driver). */
    private static volatile CollectionAccumulator<WorkerLosses> current;
    /** The task that deserialised this listener (null on the driver). */
    private transient TaskContext task;

    public LossCollector(CollectionAccumulator<WorkerLosses> sink) {
        this.sink = sink;
    }

    @Override
    public void iterationDone(Model model, int iteration, int epoch) {
        if (!(model instanceof ComputationGraph graph)) {
            throw new IllegalStateException("LossCollector expects a ComputationGraph, got " + model.getClass().getName());
        }
        MtpLossReport report = ((MtpLossReporting) graph.getLayer(GraphNames.LM_HEAD)).lastReport();
        if (report == null) {
            throw new IllegalStateException("the loss layer '" + GraphNames.LM_HEAD + "' has no report after step "
                    + (iteration + 1));
        }
        // iterationDone comes before the graph's iteration count is incremented: the update just made is number iteration+1
        boolean ownTaskEnded = task != null && task.isCompleted();
        CollectionAccumulator<WorkerLosses> newest = current;
        (ownTaskEnded && newest != null ? newest : sink).add(WorkerLosses.of(iteration + 1L, report));
    }

    private void readObject(java.io.ObjectInputStream in) throws java.io.IOException, ClassNotFoundException {
        in.defaultReadObject();
        task = TaskContext.get();
        if (task != null) {
            current = sink;
        }
    }
}
