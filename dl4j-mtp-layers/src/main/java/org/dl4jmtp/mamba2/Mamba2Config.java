package org.dl4jmtp.mamba2;

import lombok.Data;
import lombok.NoArgsConstructor;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.MixerConfig;
import org.dl4jmtp.layers.ParamInit;

/** The sizes and settings a Mamba2 mixer needs (HF names in docs/parameters.md), taken from the model's config. */
@Data
@NoArgsConstructor
public class Mamba2Config implements MixerConfig {

    private int hiddenSize;
    private int mambaNumHeads;
    private int mambaHeadDim;
    private int nGroups;
    private int ssmStateSize;
    private int convKernel;
    private int chunkSize;
    private boolean useConvBias;
    private boolean useBias;
    /** Clamp of the time step after softplus: [min, max] (max may be +inf). */
    private double[] timeStepLimit;
    private double timeStepMin;
    private double timeStepMax;
    private double timeStepFloor;
    /** Epsilon of the gated group RMSNorm. */
    private double layerNormEpsilon;
    private double initializerRange;
    private double residualScale;

    public static Mamba2Config of(NemotronV3Config c) {
        Mamba2Config m = new Mamba2Config();
        m.hiddenSize = c.getHiddenSize();
        m.mambaNumHeads = c.getMambaNumHeads();
        m.mambaHeadDim = c.getMambaHeadDim();
        m.nGroups = c.getNGroups();
        m.ssmStateSize = c.getSsmStateSize();
        m.convKernel = c.getConvKernel();
        m.chunkSize = c.getChunkSize();
        m.useConvBias = c.isUseConvBias();
        m.useBias = c.isUseBias();
        m.timeStepLimit = c.getTimeStepLimit() == null ? null : c.getTimeStepLimit().clone();
        m.timeStepMin = c.getTimeStepMin();
        m.timeStepMax = c.getTimeStepMax();
        m.timeStepFloor = c.getTimeStepFloor();
        m.layerNormEpsilon = c.getLayerNormEpsilon();
        m.initializerRange = c.getInitializerRange();
        m.residualScale = ParamInit.residualScale(c);
        return m;
    }

    /** d_inner = mamba_num_heads · mamba_head_dim. */
    public int dInner() {
        return mambaNumHeads * mambaHeadDim;
    }

    /** Channels of the causal conv (x, B, C together): d_inner + 2·G·N. */
    public int convDim() {
        return dInner() + 2 * nGroups * ssmStateSize;
    }

    /** in_proj output width, split in the order z, x, B, C, dt: 2·d_inner + 2·G·N + nh. */
    public int inProjSize() {
        return 2 * dInner() + 2 * nGroups * ssmStateSize + mambaNumHeads;
    }

    /** Heads per B/C group (head h uses group h / this). */
    public int mambaHeadsPerGroup() {
        return mambaNumHeads / nGroups;
    }
}
