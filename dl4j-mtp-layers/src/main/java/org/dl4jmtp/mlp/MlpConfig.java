package org.dl4jmtp.mlp;

import lombok.Data;
import lombok.NoArgsConstructor;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.MixerConfig;

/** The sizes a dense relu² MLP mixer needs, taken from the model's config. */
@Data
@NoArgsConstructor
public class MlpConfig implements MixerConfig {

    private int hiddenSize;
    private int intermediateSize;
    private boolean mlpBias;
    private double initializerRange;

    public static MlpConfig of(NemotronV3Config c) {
        MlpConfig m = new MlpConfig();
        m.hiddenSize = c.getHiddenSize();
        m.intermediateSize = c.getIntermediateSize();
        m.mlpBias = c.isMlpBias();
        m.initializerRange = c.getInitializerRange();
        return m;
    }
}
