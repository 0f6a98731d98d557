package org.dl4jmtp.examples.bench;

import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;

import java.util.List;

/**
 * Model FLOPs per trained token, with exactly the formula of the PyTorch peer ({@code ../shared/peer/nemotron_torch.py},
 * {@code flops_per_token}), so that both sides report comparable GFLOP/s. It counts a sparse MoE (k experts per
 * token), i.e. the model's FLOPs, not the FLOPs an implementation happens to execute.
 */
public record Flops(long activeParams, double extraForward) {

    public static final String FORMULA = "6*N_active + 3*F_extra; N_active = weights applied per token once per use "
            + "(mamba in_proj+conv1d(C*K)+out_proj; attention q,k,v,o; MoE router + k routed experts up/down "
            + "(+latent fc1/fc2) + shared expert up/down; MLP up/down; lm_head; per MTP depth eh_proj 2H^2 + its "
            + "sublayers + lm_head; no embedding/norms/elementwise); F_extra = attention 4*T*nq*hd per attention layer "
            + "+ SSD 2*Q*(G*N+nh*P) + 4*nh*P*N per mamba layer (forward); backward = 2x forward (same as the peer)";

    public double trainPerToken() {
        return 6.0 * activeParams + 3.0 * extraForward;
    }

    public static Flops of(NemotronV3Config cfg, MtpConfig mtp, int seqLen) {
        long h = cfg.getHiddenSize();
        long v = cfg.getVocabSize();
        long active = v * h;
        double extra = 0;
        for (BlockType t : cfg.getLayerTypes()) {
            active += mixerParams(cfg, t);
            extra += mixerExtra(cfg, t, seqLen);
        }
        if (mtp.enabled()) {
            List<BlockType> sub = mtp.blockTypes();
            for (int d = 0; d < mtp.getNumLayers(); d++) {  // a repeated physical depth counts D times
                active += 2 * h * h + v * h;
                for (BlockType t : sub) {
                    active += mixerParams(cfg, t);
                    extra += mixerExtra(cfg, t, seqLen);
                }
            }
        }
        return new Flops(active, extra);
    }

    static long mixerParams(NemotronV3Config cfg, BlockType kind) {
        long h = cfg.getHiddenSize();
        switch (kind) {
            case MAMBA: {
                long nh = cfg.getMambaNumHeads();
                long p = cfg.getMambaHeadDim();
                long n = cfg.getSsmStateSize();
                long g = cfg.getNGroups();
                long k = cfg.getConvKernel();
                long di = nh * p;
                return h * (2 * di + 2 * g * n + nh) + (di + 2 * g * n) * k + di * h;
            }
            case ATTENTION:
                return h * cfg.getHeadDim() * (2L * cfg.getNumAttentionHeads() + 2L * cfg.getNumKeyValueHeads());
            case MLP:
                return 2 * h * cfg.getIntermediateSize();
            case MOE: {
                long de = cfg.hasLatentMoe() ? cfg.getMoeLatentSize() : h;
                long n = h * cfg.getNRoutedExperts() + (long) cfg.getNumExpertsPerTok() * 2 * de * cfg.getMoeIntermediateSize();
                if (cfg.hasLatentMoe()) {
                    n += 2 * h * cfg.getMoeLatentSize();
                }
                if (cfg.getNSharedExperts() > 0) {
                    n += 2 * h * cfg.getMoeSharedExpertIntermediateSize();
                }
                return n;
            }
            default:
                throw new IllegalArgumentException(kind.toString());
        }
    }

    static double mixerExtra(NemotronV3Config cfg, BlockType kind, int seqLen) {
        if (kind == BlockType.ATTENTION) {
            return 4.0 * seqLen * cfg.getNumAttentionHeads() * cfg.getHeadDim();
        }
        if (kind == BlockType.MAMBA) {
            double nh = cfg.getMambaNumHeads();
            double p = cfg.getMambaHeadDim();
            double n = cfg.getSsmStateSize();
            double g = cfg.getNGroups();
            double q = cfg.getChunkSize();
            return 2.0 * q * (g * n + nh * p) + 4.0 * nh * p * n;
        }
        return 0.0;
    }
}
