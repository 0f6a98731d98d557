package org.dl4jmtp.mtp;

import org.dl4jmtp.block.BlockConfig;
import org.dl4jmtp.block.CachedBlock;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.DecoderCache;
import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.ModelWeights;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.List;

/**
 * One physical MTP depth (docs/model.md, "MTP depths"), cached: {@code u = eh_proj([enorm(emb) ; hnorm(h)])} (embedding
 * first),
 * the sublayer blocks, then {@code final_layernorm}. Physical depth p's sublayer s is HF {@code mtp.layers.{p·P+s}}.
 */
public final class CachedMtpDepth {

    private final ModelWeights first;
    private final ModelWeights last;
    private final List<CachedBlock> sublayers = new ArrayList<>();
    private final double eps;

    public CachedMtpDepth(NemotronV3Config config, List<BlockType> pattern, int physicalDepth, ModelWeights weights) {
        int base = physicalDepth * pattern.size();
        for (int s = 0; s < pattern.size(); s++) {
            sublayers.add(new CachedBlock(BlockConfig.of(pattern.get(s), config),
                    weights.under("mtp.layers." + (base + s) + ".")));
        }
        this.first = weights.under("mtp.layers." + base + ".");
        this.last = weights.under("mtp.layers." + (base + pattern.size() - 1) + ".");
        this.eps = config.getLayerNormEpsilon();
    }

    public DecoderCache newCache() {
        List<LayerState> states = new ArrayList<>();
        for (CachedBlock block : sublayers) {
            states.add(block.newState());
        }
        return new DecoderCache(states);
    }

    /**
     * @param previousHidden [n, H] h^{d-1} at positions t..t+n-1
     * @param embedded       [n, H] the embeddings of x[t+d] .. x[t+n-1+d]
     * @return [n, H] h^d (after final_layernorm)
     */
    public INDArray forward(INDArray previousHidden, INDArray embedded, DecoderCache cache) {
        long n = embedded.size(0);
        long h = embedded.size(1);
        INDArray fused = Nd4j.createUninitialized(embedded.dataType(), n, 2 * h);       // each norm writes its half
        RowOps.rmsNormInto(embedded, first.vector("enorm.weight"), eps, RowOps.columns(fused, 0, h));
        RowOps.rmsNormInto(previousHidden, first.vector("hnorm.weight"), eps, RowOps.columns(fused, h, 2 * h));
        INDArray u = RowOps.linear(fused, first.get("eh_proj.weight"), null);
        for (int s = 0; s < sublayers.size(); s++) {
            u = sublayers.get(s).forward(u, cache.state(s));
        }
        cache.advanced((int) embedded.size(0));
        return RowOps.rmsNorm(u, last.vector("final_layernorm.weight"), eps);
    }
}
