package org.dl4jmtp.mamba2;

import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.dl4jmtp.layers.M21Workarounds;
import org.dl4jmtp.layers.Mixer;
import org.dl4jmtp.layers.ParamInit;
import org.dl4jmtp.layers.ParamKeys;
import org.dl4jmtp.layers.SdMath;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Map;
import java.util.Set;

/**
 * Mamba2 mixer (docs/model.md, "Mamba2"): in_proj split z | xBC | dt, causal depthwise conv over xBC with SiLU,
 * softplus time step
 * (no clamp unless {@code time_step_limit} is finite), chunked SSD scan ({@link SsdScan}), D skip, gated RMSNorm over
 * {@code n_groups} groups of {@code y·silu(z)}, out_proj.
 */
public final class Mamba2Mixer implements Mixer {

    public static final String IN_PROJ = ParamKeys.of("in_proj.weight");
    public static final String IN_PROJ_BIAS = ParamKeys.of("in_proj.bias");
    public static final String CONV_WEIGHT = "conv1d.weight";
    public static final String CONV_BIAS = "conv1d.bias";
    public static final String DT_BIAS = ParamKeys.of("dt_bias");
    public static final String A_LOG = ParamKeys.of("A_log");
    public static final String D = "D";
    public static final String NORM = "norm.weight";
    public static final String OUT_PROJ = ParamKeys.of("out_proj.weight");
    public static final String OUT_PROJ_BIAS = ParamKeys.of("out_proj.bias");

    private static final Set<String> NO_WEIGHT_DECAY = Set.of(A_LOG, D, DT_BIAS);

    private final Mamba2Config config;

    public Mamba2Mixer(Mamba2Config config) {
        this.config = config;
    }

    @Override
    public boolean mixesPositions() {
        return true;
    }

    @Override
    public void defineParameters(SDLayerParams params, String prefix) {
        int h = config.getHiddenSize();
        params.addWeightParam(prefix + IN_PROJ, config.inProjSize(), h);
        params.addWeightParam(prefix + CONV_WEIGHT, config.convDim(), 1, config.getConvKernel());
        params.addWeightParam(prefix + NORM, config.dInner());
        params.addWeightParam(prefix + OUT_PROJ, h, config.dInner());
        if (config.isUseConvBias()) {
            params.addBiasParam(prefix + CONV_BIAS, config.convDim());
        }
        if (config.isUseBias()) {
            params.addBiasParam(prefix + IN_PROJ_BIAS, config.inProjSize());
            params.addBiasParam(prefix + OUT_PROJ_BIAS, h);
        }
        params.addBiasParam(prefix + DT_BIAS, config.getMambaNumHeads());
        params.addBiasParam(prefix + A_LOG, config.getMambaNumHeads());
        params.addBiasParam(prefix + D, config.getMambaNumHeads());
    }

    @Override
    public void initializeParameters(Map<String, INDArray> params, String prefix) {
        double std = config.getInitializerRange();
        int nh = config.getMambaNumHeads();
        ParamInit.normal(params.get(prefix + IN_PROJ), std);
        ParamInit.normal(params.get(prefix + CONV_WEIGHT), std);
        params.get(prefix + NORM).assign(1.0);
        // HF: out_proj is re-initialised kaiming_uniform(a=√5) and divided by √L (rescale_prenorm_residual)
        ParamInit.kaimingUniform(params.get(prefix + OUT_PROJ), config.dInner(), config.getResidualScale());
        zeroIfPresent(params, prefix + CONV_BIAS);
        zeroIfPresent(params, prefix + IN_PROJ_BIAS);
        zeroIfPresent(params, prefix + OUT_PROJ_BIAS);
        INDArray aLog = params.get(prefix + A_LOG);
        for (int i = 0; i < nh; i++) {
            aLog.putScalar(i, Math.log(i + 1));
        }
        params.get(prefix + D).assign(1.0);
        params.get(prefix + DT_BIAS).assign(initialDtBias(nh, aLog.dataType()));
    }

    /** dt log-uniform in [time_step_min, time_step_max], floored, then inverse softplus: dt + log(-expm1(-dt)). */
    private INDArray initialDtBias(int nh, DataType type) {
        double logMin = Math.log(config.getTimeStepMin());
        double logMax = Math.log(config.getTimeStepMax());
        INDArray dt = Transforms.exp(Nd4j.rand(DataType.DOUBLE, nh).muli(logMax - logMin).addi(logMin), false);
        INDArray out = Nd4j.create(type, nh);
        for (int i = 0; i < nh; i++) {
            double v = Math.max(dt.getDouble(i), config.getTimeStepFloor());
            out.putScalar(i, v + Math.log(-Math.expm1(-v)));
        }
        return out;
    }

    private static void zeroIfPresent(Map<String, INDArray> params, String key) {
        if (params.containsKey(key)) {
            params.get(key).assign(0.0);
        }
    }

    @Override
    public SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix) {
        return define(sd, x, params, prefix, null);
    }

    /** The mixer within each document: conv window and SSM state restart at each document start. */
    @Override
    public SDVariable define(SameDiff sd, SDVariable x, Map<String, SDVariable> params, String prefix,
                             SDVariable segments) {
        int h = config.getHiddenSize();
        int dInner = config.dInner();
        int convDim = config.convDim();
        int nh = config.getMambaNumHeads();
        int headDim = config.getMambaHeadDim();
        int groups = config.getNGroups();
        int state = config.getSsmStateSize();
        int groupState = groups * state;

        SDVariable zxbcdt = M21Workarounds.linear3d(sd, x, params.get(prefix + IN_PROJ), h, config.inProjSize());
        if (params.containsKey(prefix + IN_PROJ_BIAS)) {
            zxbcdt = zxbcdt.add(params.get(prefix + IN_PROJ_BIAS));
        }
        SDVariable z = SdMath.sliceLastAxis(sd, zxbcdt, 3, 0, dInner);
        SDVariable xbc = SdMath.sliceLastAxis(sd, zxbcdt, 3, dInner, dInner + convDim);
        SDVariable dtRaw = SdMath.sliceLastAxis(sd, zxbcdt, 3, dInner + convDim, config.inProjSize());

        xbc = SdMath.silu(sd, causalDepthwiseConv(sd, xbc, params.get(prefix + CONV_WEIGHT), params.get(prefix + CONV_BIAS),
                segments));
        SDVariable batchTime = SdMath.dims(sd, x, 0, 2);
        SDVariable xs = SdMath.reshape(sd, SdMath.sliceLastAxis(sd, xbc, 3, 0, dInner), batchTime, SdMath.constDims(sd, nh, headDim));
        SDVariable b = SdMath.reshape(sd, SdMath.sliceLastAxis(sd, xbc, 3, dInner, dInner + groupState), batchTime, SdMath.constDims(sd, groups, state));
        SDVariable c = SdMath.reshape(sd, SdMath.sliceLastAxis(sd, xbc, 3, dInner + groupState, convDim), batchTime, SdMath.constDims(sd, groups, state));

        SDVariable dt = sd.nn().softplus(dtRaw.add(params.get(prefix + DT_BIAS)));
        dt = clampToTimeStepLimit(sd, dt);
        SDVariable a = sd.math().exp(params.get(prefix + A_LOG)).neg();

        SDVariable y = SsdScan.scan(sd, xs, dt, a, b, c, segments, nh, headDim, groups, state, config.getChunkSize());
        y = y.add(M21Workarounds.broadcastMul(sd, xs, params.get(prefix + D).reshape(nh, 1)));  // D skip on the post-conv x
        SDVariable gated = SdMath.reshape(sd, y, batchTime, SdMath.constDims(sd, dInner)).mul(SdMath.silu(sd, z));
        SDVariable normed = gatedGroupNorm(sd, gated, batchTime, params.get(prefix + NORM));

        SDVariable out = M21Workarounds.linear3d(sd, normed, params.get(prefix + OUT_PROJ), dInner, h);
        if (params.containsKey(prefix + OUT_PROJ_BIAS)) {
            out = out.add(params.get(prefix + OUT_PROJ_BIAS));
        }
        return out;
    }

    /**
     * Causal depthwise conv over time of x [B, T, C] with weight [C, 1, K]: out[t] = b + Σ_j W[:, 0, j]·x[t-(K-1)+j],
     * zero before the start (and, with {@code segments}, before the start of the step's document). K shifted
     * multiply-adds of a left-padded copy (works for any K and any T).
     */
    private SDVariable causalDepthwiseConv(SameDiff sd, SDVariable x, SDVariable weight, SDVariable bias,
                                           SDVariable segments) {
        int k = config.getConvKernel();
        int channels = config.convDim();
        SDVariable padded = sd.nn().pad(x, sd.constant(Nd4j.createFromArray(new long[][]{{0, 0}, {k - 1, 0}, {0, 0}})), 0.0);
        SDVariable taps = weight.reshape(channels, k);
        SDVariable out = null;
        for (int j = 0; j < k; j++) {
            long end = j - (k - 1);  // negative end: stop (K-1-j) steps before the padded end
            int endMask = end == 0 ? 0b111 : 0b101;
            SDVariable shifted = sd.stridedSlice(padded, new long[]{0, j, 0}, new long[]{0, end, 0}, new long[]{1, 1, 1},
                    0b101, endMask, 0, 0, 0);
            SDVariable tap = SdMath.sliceLastAxis(sd, taps, 2, j, j + 1).reshape(channels);
            SDVariable term = M21Workarounds.broadcastMul(sd, shifted, tap);
            if (segments != null && j < k - 1) {
                term = M21Workarounds.broadcastMul(sd, term, sd.expandDims(sameDocument(sd, segments, j, endMask, end), 2));
            }
            out = out == null ? term : out.add(term);
        }
        return bias == null ? out : out.add(bias);
    }

    /** [B, T] 1 where the step that tap j reads (K-1-j back) is in the output step's document, else 0. */
    private SDVariable sameDocument(SameDiff sd, SDVariable segments, int j, int endMask, long end) {
        int k = config.getConvKernel();
        SDVariable padded = sd.nn().pad(segments, sd.constant(Nd4j.createFromArray(new long[][]{{0, 0}, {k - 1, 0}})), -1.0);
        SDVariable read = sd.stridedSlice(padded, new long[]{0, j}, new long[]{0, end}, new long[]{1, 1},
                0b01, endMask & 0b11, 0, 0, 0);
        return read.eq(segments).castTo(segments.dataType());
    }

    private SDVariable clampToTimeStepLimit(SameDiff sd, SDVariable dt) {
        double[] limit = config.getTimeStepLimit();
        boolean noLower = limit == null || limit[0] <= 0.0;
        boolean noUpper = limit == null || Double.isInfinite(limit[1]);
        if (noLower && noUpper) {
            return dt;  // the default (0, inf): the mamba_ssm kernels do not clamp
        }
        return sd.math().clipByValue(dt, noLower ? 0.0 : limit[0], noUpper ? Double.MAX_VALUE : limit[1]);
    }

    /** Zamba2RMSNormGated: RMS-normalise each of the G contiguous groups of d_inner/G channels, then scale. */
    private SDVariable gatedGroupNorm(SameDiff sd, SDVariable gated, SDVariable batchTime, SDVariable weight) {
        int groups = config.getNGroups();
        int groupSize = config.dInner() / groups;
        SDVariable grouped = SdMath.reshape(sd, gated, batchTime, SdMath.constDims(sd, groups, groupSize));
        SDVariable normed = SdMath.normalizeRms(sd, grouped, config.getLayerNormEpsilon(), 4);
        SDVariable flat = SdMath.reshape(sd, normed, batchTime, SdMath.constDims(sd, config.dInner()));
        return M21Workarounds.broadcastMul(sd, flat, weight);
    }

    @Override
    public boolean skipsWeightDecay(String keyWithoutPrefix) {
        return NO_WEIGHT_DECAY.contains(keyWithoutPrefix);
    }
}
