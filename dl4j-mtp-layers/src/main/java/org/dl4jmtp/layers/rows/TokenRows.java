package org.dl4jmtp.layers.rows;

import org.nd4j.linalg.api.ndarray.INDArray;

/** Between DL4J's recurrent layout [mb, F, T] and token rows [mb·T, F] (row b·T + t), the layout the math uses. */
public final class TokenRows {

    private TokenRows() {
    }

    /** [mb, F, T] → [mb·T, F] (a copy). */
    public static INDArray of(INDArray sequence) {
        return sequence.permute(0, 2, 1).dup('c').reshape(sequence.size(0) * sequence.size(2), sequence.size(1));
    }

    /** [mb·T, F] → a [mb, F, T] view, for {@code mb} sequences. */
    public static INDArray toSequence(INDArray rows, long mb) {
        return rows.reshape(mb, rows.size(0) / mb, rows.size(1)).permute(0, 2, 1);
    }
}
