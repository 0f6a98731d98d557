package org.dl4jmtp.layers;

/** A layer configuration that can run either {@link LayerRuntime}. */
public interface RuntimeSelectable {

    LayerRuntime getRuntime();

    void setRuntime(LayerRuntime runtime);
}
