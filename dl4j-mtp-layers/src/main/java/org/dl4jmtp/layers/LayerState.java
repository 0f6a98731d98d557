package org.dl4jmtp.layers;

/**
 * The inference state one block keeps between steps (Mamba2: conv window and SSM state; attention: KV cache; MLP and
 * MoE: none). A state advances by the tokens of each step and can be rolled back to any length inside its last step,
 * which is how speculative decoding discards rejected draft positions.
 */
public interface LayerState {

    /** A block without state (dense MLP, MoE). */
    public LayerState NONE = length -> {
    };

    /**
     * Restores the state after the first {@code length} tokens of the sequence.
     *
     * @throws IllegalStateException if that point is no longer restorable (before the last step)
     */
    public void truncate(int length);
}
