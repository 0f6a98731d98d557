package org.dl4jmtp.layers;

/** The few sizes and settings one mixer type needs (its part of the HF config), stored in a block's configuration. */
public interface MixerConfig {

    int getHiddenSize();

    double getInitializerRange();
}
