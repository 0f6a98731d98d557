package org.dl4jmtp.block;

import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.RowMixer;
import org.dl4jmtp.layers.rows.ColumnSums;
import org.dl4jmtp.layers.rows.RowRmsNorm;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Map;

/**
 * One NemotronV3 block, {@code x + Mixer(RMSNorm(x)·g)}, on token rows with its explicit backprop: the math that
 * {@link NemotronV3Block} defines in SameDiff, shared by the backbone blocks ({@link ExplicitBlock}) and
 * the sublayers of an MTP depth ({@link ExplicitMtpDepth}). Keys are {@link NemotronV3Block}'s below {@code prefix}.
 */
public final class RowBlock {

    /** What backprop needs from one forward pass. */
    public static final class Forward {
        final RowRmsNorm norm;  // the pre-norm, before its weight
        final Object mixer;     // the mixer's forward state

        private Forward(RowRmsNorm norm, Object mixer) {
            this.norm = norm;
            this.mixer = mixer;
        }

        /** The routing of a MoE block's forward pass; null for other mixers. */
        public org.dl4jmtp.moe.MoeRouting routing() {
            return mixer instanceof org.dl4jmtp.moe.SparseMoe.Forward ? ((org.dl4jmtp.moe.SparseMoe.Forward) mixer).routing : null;
        }
    }

    private final BlockConfig config;
    private final Map<String, INDArray> params;
    private final String normKey;
    private final RowMixer<Object> mixer;

    public RowBlock(BlockConfig config, Map<String, INDArray> params, String prefix) {
        this.config = config;
        this.params = params;
        this.normKey = prefix + NemotronV3Block.NORM;
        this.mixer = RowMixer.of(config.mixer(), params, prefix + NemotronV3Block.MIXER_PREFIX);
    }

    /**
     * Replaces the rows {@code x} [B·T, H] by the block's output (the residual is added in place: backprop does not
     * need the block input itself).
     */
    public Forward forwardInPlace(INDArray x, int batch, RowMixer.Cache cache) {
        return forwardInPlace(x, batch, null, cache);
    }

    /** {@link #forwardInPlace(INDArray, int, RowMixer.Cache)} within each document (null: one per row). */
    public Forward forwardInPlace(INDArray x, int batch, Documents documents, RowMixer.Cache cache) {
        RowRmsNorm norm = RowRmsNorm.of(x, config.getLayerNormEpsilon(), cache);
        INDArray normed = cache.createUninitialized(x.dataType(), x.shape());
        Nd4j.getExecutioner().exec(new BroadcastMulOp(norm.normalized, params.get(normKey), normed, 1));
        RowMixer.Result<Object> mixed = mixer.forward(normed, batch, documents, cache);
        x.addi(mixed.output);
        return new Forward(norm, mixed.state);
    }

    /**
     * Writes the block's parameter gradients into {@code gradients}.
     *
     * @param gradOut [B·T, H] dL/d(block output)
     * @return [B·T, H] dL/d(block input)
     */
    public INDArray backward(Forward f, INDArray gradOut, Map<String, INDArray> gradients) {
        INDArray gradNormed = mixer.backward(f.mixer, gradOut, gradients);
        // normed = x̂·g
        gradients.get(normKey).assign(ColumnSums.of(gradNormed.mul(f.norm.normalized)));
        return f.norm.backward(gradNormed.mulRowVector(params.get(normKey))).addi(gradOut);   // + residual
    }
}
