package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.layers.samediff.SameDiffLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.dl4jmtp.moe.ExpertLoadSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Map;

/**
 * The SameDiff runtime of a layer with MoE blocks, which also counts the tokens routed to each expert. The SameDiff
 * graph computes the top-k choice as a mask inside its ops and does not expose it, so every forward pass is computed
 * once more by the layer's explicit runtime on the same input and parameters (the same {@code MoeRouting} choice,
 * tested equal to the graph's), and only its counts are kept. That costs one sparse forward pass per SameDiff forward
 * pass, which computes every expert densely: acceptable for the reference runtime.
 */
public final class CountingSameDiffLayer extends SameDiffLayer implements ExpertLoadSource {

    private final RowForwardLayer<?> counter;

    /**
     * @param counter the explicit runtime of the same configuration (it must implement {@link ExpertLoadSource});
     *                given this layer's parameter views when they are set
     */
    CountingSameDiffLayer(NeuralNetConfiguration conf, DataType dataType, RowForwardLayer<?> counter) {
        super(conf, dataType);
        if (!(counter instanceof ExpertLoadSource)) {
            throw new IllegalArgumentException(counter.getClass().getName() + " does not count expert loads");
        }
        this.counter = counter;
    }

    @Override
    public void setParamsViewArray(INDArray params) {
        super.setParamsViewArray(params);
        counter.setParamsViewArray(params);
    }

    @Override
    public void setParamTable(Map<String, INDArray> paramTable) {
        super.setParamTable(paramTable);
        counter.setParamTable(this.paramTable);
    }

    @Override
    public void setConf(NeuralNetConfiguration conf) {
        super.setConf(conf);
        counter.setConf(conf);
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        INDArray out = super.activate(training, workspaceMgr);
        counter.observeForward(input);
        return out;
    }

    @Override
    public Map<String, long[]> drainExpertCounts() {
        return ((ExpertLoadSource) counter).drainExpertCounts();
    }
}
