package org.dl4jmtp.layers;

/**
 * The few sizes and settings one mixer type needs (its part of the HF config), stored in a block's configuration.
 * Serializable: Spark ships layer configurations to its workers with Java serialisation.
 */
public interface MixerConfig extends java.io.Serializable {

    int getHiddenSize();

    double getInitializerRange();
}
