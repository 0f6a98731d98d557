package org.dl4jmtp.attention;

import lombok.Data;
import lombok.NoArgsConstructor;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.MixerConfig;

/** The sizes and settings a causal GQA attention mixer needs, taken from the model's config. */
@Data
@NoArgsConstructor
public class AttentionConfig implements MixerConfig {

    private int hiddenSize;
    private int numAttentionHeads;
    private int numKeyValueHeads;
    private int headDim;
    private boolean attentionBias;
    private double initializerRange;

    public static AttentionConfig of(NemotronV3Config c) {
        AttentionConfig a = new AttentionConfig();
        a.hiddenSize = c.getHiddenSize();
        a.numAttentionHeads = c.getNumAttentionHeads();
        a.numKeyValueHeads = c.getNumKeyValueHeads();
        a.headDim = c.getHeadDim();
        a.attentionBias = c.isAttentionBias();
        a.initializerRange = c.getInitializerRange();
        return a;
    }

    /** q_proj output width = num_attention_heads · head_dim. */
    public int queryWidth() {
        return numAttentionHeads * headDim;
    }

    /** k_proj / v_proj output width = num_key_value_heads · head_dim. */
    public int kvWidth() {
        return numKeyValueHeads * headDim;
    }

    /** Query heads sharing one KV head (GQA group size). */
    public int queriesPerKvHead() {
        return numAttentionHeads / numKeyValueHeads;
    }
}
