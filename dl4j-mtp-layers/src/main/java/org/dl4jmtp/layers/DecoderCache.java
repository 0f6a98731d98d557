package org.dl4jmtp.layers;

import java.util.List;

/**
 * The per-block states of one cached stack (the backbone, or one MTP depth) and the number of tokens they have seen.
 * {@link #truncate} rolls every state back to a length inside the last step (rejected draft positions).
 */
public final class DecoderCache {

    private final List<LayerState> states;
    private int length;
    private int stepStart;

    public DecoderCache(List<LayerState> states) {
        this.states = List.copyOf(states);
    }

    /** Tokens processed so far (= the position of the next token). */
    public int length() {
        return length;
    }

    /**
     * Keeps the first {@code newLength} tokens: restores every block's state to the point after them.
     *
     * @throws IllegalStateException unless {@code newLength} lies within the last step
     */
    public void truncate(int newLength) {
        if (newLength == length) {
            return;
        }
        if (newLength < stepStart || newLength > length) {
            throw new IllegalStateException("Cache of " + length + " tokens can only be rolled back within its last"
                    + " step (" + stepStart + ".." + length + "), not to " + newLength);
        }
        for (LayerState state : states) {
            state.truncate(newLength);
        }
        length = newLength;
    }

    public LayerState state(int block) {
        return states.get(block);
    }

    public void advanced(int tokens) {
        stepStart = length;
        length += tokens;
    }
}
