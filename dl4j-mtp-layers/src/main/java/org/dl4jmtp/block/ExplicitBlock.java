package org.dl4jmtp.block;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.dl4jmtp.layers.RowForwardLayer;
import org.dl4jmtp.layers.RowMixer;
import org.dl4jmtp.layers.rows.TokenRows;
import org.dl4jmtp.moe.ExpertCounts;
import org.dl4jmtp.moe.ExpertLoadSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Explicit runtime of {@link NemotronV3BlockLayer}: {@code x + Mixer(RMSNorm(x))} on [mb, H, T] with an explicit
 * backprop, computed on token rows by {@link RowBlock} (mixers {@code ChunkedMamba2}, {@code SparseMoe} with a sparse
 * token dispatch, {@code CausalAttention}, {@code Relu2Mlp}).
 *
 * <p>Backprop reuses the training forward pass ({@link RowForwardLayer}).
 */
public class ExplicitBlock extends RowForwardLayer<ExplicitBlock.BlockForward> implements ExpertLoadSource {

    /** What backprop needs from one forward pass. */
    static final class BlockForward extends RowForwardLayer.Forward {
        final RowBlock.Forward block;

        BlockForward(RowBlock.Forward block, INDArray output) {
            this.block = block;
            this.output = output;
        }
    }

    private long forwardPasses;
    private final ExpertCounts expertCounts = new ExpertCounts();

    public ExplicitBlock(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private NemotronV3BlockLayer blockConf() {
        return (NemotronV3BlockLayer) layerConf();
    }

    private RowBlock block() {
        return new RowBlock(blockConf().getBlock(), paramTable, "");
    }

    /** Forward passes computed so far (a backprop without its kept forward pass computes one more). */
    public long forwardPasses() {
        return forwardPasses;
    }

    @Override
    protected BlockForward forwardRows(INDArray input, RowMixer.Cache cache) {
        forwardPasses++;
        INDArray x = TokenRows.of(input);                                                  // [n, H], becomes the output
        return new BlockForward(block().forwardInPlace(x, (int) input.size(0), documents(input), cache), x);
    }

    @Override
    protected void observe(BlockForward forward) {
        expertCounts.add("", forward.block.routing());
    }

    @Override
    public java.util.Map<String, long[]> drainExpertCounts() {
        return expertCounts.drain();
    }

    @Override
    protected INDArray backwardRows(BlockForward forward, INDArray gradOutRows) {
        return block().backward(forward.block, gradOutRows, gradTable);
    }

    @Override
    public Type type() {
        return Type.RECURRENT;
    }
}
