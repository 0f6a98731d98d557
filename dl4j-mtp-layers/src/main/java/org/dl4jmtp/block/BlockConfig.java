package org.dl4jmtp.block;

import lombok.Data;
import lombok.NoArgsConstructor;
import org.dl4jmtp.attention.AttentionConfig;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.MixerConfig;
import org.dl4jmtp.mamba2.Mamba2Config;
import org.dl4jmtp.mlp.MlpConfig;
import org.dl4jmtp.moe.MoeConfig;

/**
 * What one block needs: its type, the hidden size, the norm's epsilon and its mixer's configuration (exactly one of
 * the four mixer fields is set, the one of {@link #blockType}). A layer configuration stores this, not the model's
 * whole HF config. Serializable: Spark ships layer configurations to its workers with Java serialisation.
 */
@Data
@NoArgsConstructor
public class BlockConfig implements java.io.Serializable {

    private static final long serialVersionUID = 1L;

    private BlockType blockType;
    private int hiddenSize;
    private double layerNormEpsilon;
    private Mamba2Config mamba2;
    private AttentionConfig attention;
    private MlpConfig mlp;
    private MoeConfig moe;

    /** The block of {@code type} of a model with {@code config}. */
    public static BlockConfig of(BlockType type, NemotronV3Config config) {
        BlockConfig b = new BlockConfig();
        b.blockType = type;
        b.hiddenSize = config.getHiddenSize();
        b.layerNormEpsilon = config.getLayerNormEpsilon();
        switch (type) {
            case MAMBA -> b.mamba2 = Mamba2Config.of(config);
            case ATTENTION -> b.attention = AttentionConfig.of(config);
            case MLP -> b.mlp = MlpConfig.of(config);
            case MOE -> b.moe = MoeConfig.of(config);
            default -> throw new IllegalArgumentException("Unknown block type " + type);
        }
        return b;
    }

    /** The configuration of this block's mixer. */
    public MixerConfig mixer() {
        MixerConfig mixer = switch (blockType) {
            case MAMBA -> mamba2;
            case ATTENTION -> attention;
            case MLP -> mlp;
            case MOE -> moe;
        };
        if (mixer == null) {
            throw new IllegalStateException("Block of type " + blockType + " has no " + blockType + " mixer settings");
        }
        return mixer;
    }
}
