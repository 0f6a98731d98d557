package org.dl4jmtp.layers;

/** A layer configuration with buffers that are loaded and saved but never updated (MoE correction bias). */
public interface FrozenParams {

    /** True for a parameter key of a buffer that is never updated. */
    boolean isFrozenParam(String key);
}
