package org.dl4jmtp.mamba2;

import org.dl4jmtp.layers.CachedMixer;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.ArrayList;
import java.util.List;

/**
 * Mamba2 mixer with a conv window and an SSM state (docs/model.md, "Mamba2"): in_proj split z | xBC | dt, causal
 * depthwise conv
 * over [window ; new xBC rows] with SiLU, softplus time step, the selective-scan recurrence from the stored state,
 * D skip, gated group RMSNorm, out_proj. Long steps (prefill) are scanned in blocks of at most
 * {@link #maxBlock()} tokens, arranged so that the last block is the full one: that many trailing positions of a
 * step stay restorable.
 */
public final class CachedMamba2 implements CachedMixer {

    /** Budget of one block's state history, in elements (nh·P·N per token). */
    private static final long HISTORY_BUDGET = 1L << 22;

    private final Mamba2Config config;
    private final ModelWeights weights;

    public CachedMamba2(Mamba2Config config, ModelWeights weights) {
        if (config.getConvKernel() < 2) {
            throw new IllegalArgumentException("The cached Mamba2 path needs conv_kernel >= 2, got " + config.getConvKernel());
        }
        this.config = config;
        this.weights = weights;
    }

    /** Tokens per scan block: between 8 and 64, fewer for large states. */
    public int maxBlock() {
        long perToken = (long) config.getMambaNumHeads() * config.getMambaHeadDim() * config.getSsmStateSize();
        return (int) Math.max(8, Math.min(64, HISTORY_BUDGET / perToken));
    }

    @Override
    public LayerState newState() {
        INDArray window = Nd4j.zeros(weights.dataType(), config.getConvKernel() - 1, config.convDim());
        INDArray ssm = Nd4j.zeros(weights.dataType(), config.getMambaNumHeads(), config.getMambaHeadDim(),
                config.getSsmStateSize());
        return new MambaState(window, ssm);
    }

    @Override
    public INDArray forward(INDArray normed, LayerState layerState) {
        MambaState state = (MambaState) layerState;
        int n = (int) normed.size(0);
        int dInner = config.dInner();
        int convDim = config.convDim();
        int nh = config.getMambaNumHeads();
        int groupState = config.getNGroups() * config.getSsmStateSize();

        INDArray zxbcdt = RowOps.linear(normed, weights.get("in_proj.weight"), weights.optionalVector("in_proj.bias"));
        INDArray z = RowOps.columns(zxbcdt, 0, dInner);
        INDArray xbc = RowOps.columns(zxbcdt, dInner, dInner + convDim);
        INDArray dtRaw = RowOps.columns(zxbcdt, dInner + convDim, config.inProjSize());

        INDArray inputs = Nd4j.vstack(state.window(), xbc);                              // [K−1+n, convDim]
        INDArray conv = RowOps.silu(causalConv(inputs, n));
        INDArray x = contiguous(RowOps.columns(conv, 0, dInner), n).reshape(n, nh, config.getMambaHeadDim());
        INDArray b = contiguous(RowOps.columns(conv, dInner, dInner + groupState), n)
                .reshape(n, config.getNGroups(), config.getSsmStateSize());
        INDArray c = contiguous(RowOps.columns(conv, dInner + groupState, convDim), n)
                .reshape(n, config.getNGroups(), config.getSsmStateSize());
        INDArray dt = timeStep(dtRaw);
        INDArray a = Transforms.exp(weights.vector("A_log"), true).negi();

        INDArray y = scan(state, inputs, x, dt, a, b, c);
        y.addi(x.mul(weights.vector("D").reshape(1, nh, 1)));                              // D skip on the post-conv x
        INDArray gated = y.reshape(n, dInner).mul(RowOps.silu(z));
        return RowOps.linear(gatedGroupNorm(gated, n), weights.get("out_proj.weight"),
                weights.optionalVector("out_proj.bias"));
    }

    /** out[t] = Σ_j W[:, 0, j]·inputs[t + j] (+ b): row t of the step sees its K−1 predecessors, as the graph's conv. */
    private INDArray causalConv(INDArray inputs, int n) {
        int k = config.getConvKernel();
        INDArray taps = weights.get("conv1d.weight").reshape(config.convDim(), k).transpose();   // [K, convDim]
        INDArray out = null;
        if (n == 1) {
            out = inputs.mul(taps).sum(true, 0);                                    // decode: the K rows are the window
        }
        for (int j = 0; j < k && n > 1; j++) {
            INDArray term = RowOps.rows(inputs, j, j + n).mul(taps.getRow(j));
            out = out == null ? term : out.addi(term);
        }
        INDArray bias = weights.optionalVector("conv1d.bias");
        return bias == null ? out : out.addiRowVector(bias);
    }

    /** Columns of the step's rows, contiguous: one row's columns already are (a view), more rows are copied. */
    private static INDArray contiguous(INDArray columns, int n) {
        return n == 1 ? columns : columns.dup('c');
    }

    /** softplus(dt_raw + dt_bias), clamped only to a finite time_step_limit (the default (0, inf) does nothing). */
    private INDArray timeStep(INDArray dtRaw) {
        INDArray dt = Transforms.softPlus(dtRaw.addRowVector(weights.vector("dt_bias")), false);
        double[] limit = config.getTimeStepLimit();
        if (limit != null && limit[0] > 0.0) {
            dt = Transforms.max(dt, limit[0], false);
        }
        if (limit != null && !Double.isInfinite(limit[1])) {
            dt = Transforms.min(dt, limit[1], false);
        }
        return dt;
    }

    /** The recurrence over the step in blocks (the first one short); records the step in the state. */
    private INDArray scan(MambaState state, INDArray inputs, INDArray x, INDArray dt, INDArray a, INDArray b, INDArray c) {
        int n = (int) x.size(0);
        int block = maxBlock();
        INDArray ssm = state.ssm();
        List<INDArray> ys = new ArrayList<>();
        SsmRecurrence.Result last = null;
        for (int from = 0, size = n - block * ((n - 1) / block); from < n; from += size, size = block) {
            int to = from + size;
            last = SsmRecurrence.scan(ssm, RowOps.rows3(x, from, to), RowOps.rows(dt, from, to), a,
                    RowOps.rows3(b, from, to), RowOps.rows3(c, from, to));
            ssm = last.finalState();
            ys.add(last.y());
        }
        state.advance(inputs, ssm, last.history());
        return ys.size() == 1 ? ys.get(0) : Nd4j.concat(0, ys.toArray(new INDArray[0]));
    }

    /** Zamba2RMSNormGated: RMS-normalise each of the G contiguous groups of d_inner/G channels, then scale. */
    private INDArray gatedGroupNorm(INDArray gated, int n) {
        int groups = config.getNGroups();
        INDArray grouped = gated.reshape((long) n * groups, config.dInner() / groups);       // a row per group
        return RowOps.normalizeInto(grouped, config.getLayerNormEpsilon(), grouped).reshape(n, config.dInner())
                .muliRowVector(weights.vector("norm.weight"));
    }
}
