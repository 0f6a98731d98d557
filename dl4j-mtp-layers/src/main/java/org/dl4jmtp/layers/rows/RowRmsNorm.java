package org.dl4jmtp.layers.rows;

import org.dl4jmtp.layers.RowMixer;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * RMS normalisation of each row, {@code x̂ = x·r} with {@code r = 1/sqrt(mean(x²) + eps)}, and its backprop
 * {@code dx = r·(dx̂ − x̂·mean(dx̂·x̂))}: the block's pre-norm and Mamba2's gated group norm (the weight is applied by
 * the caller).
 */
public final class RowRmsNorm {

    public final INDArray invRms;      // [n, 1]
    public final INDArray normalized;  // [n, k]

    private RowRmsNorm(INDArray invRms, INDArray normalized) {
        this.invRms = invRms;
        this.normalized = normalized;
    }

    /** Normalises the rows of {@code rows} [n, k]; the result is kept in {@code cache} for backprop. */
    public static RowRmsNorm of(INDArray rows, double eps, RowMixer.Cache cache) {
        INDArray invRms = cache.keep(Transforms.pow(rows.mul(rows).mean(true, 1).addi(eps), -0.5, false));
        INDArray normalized = cache.createUninitialized(rows.dataType(), rows.shape());
        Nd4j.getExecutioner().exec(new BroadcastMulOp(rows, invRms, normalized, 0));
        return new RowRmsNorm(invRms, normalized);
    }

    /** @return dL/d(rows) from dL/d(normalized) (which it overwrites) */
    public INDArray backward(INDArray gradNormalized) {
        INDArray projection = gradNormalized.mul(normalized).mean(true, 1);                   // [n, 1]
        return gradNormalized.subi(normalized.mulColumnVector(projection)).muliColumnVector(invRms);
    }
}
