package org.dl4jmtp.generate;

import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Hidden-state rows [·, H] of a contiguous range of positions (the inputs a later MTP depth still needs). */
final class HiddenHistory {

    private INDArray rows;
    private int first;

    /** Position after the last stored row. */
    int end() {
        return rows == null ? first : first + (int) rows.size(0);
    }

    /** Appends rows [m, H] for positions {@code position .. position+m−1}; {@code position} must be {@link #end()}. */
    void append(int position, INDArray block) {
        if (block.size(0) == 0) {
            return;
        }
        if (rows == null) {
            first = position;
            rows = block.dup('c');
            return;
        }
        if (position != end()) {
            throw new IllegalStateException("Hidden rows must be appended at position " + end() + ", not " + position);
        }
        rows = Nd4j.vstack(rows, block);
    }

    /** Rows of positions {@code [from, to)}. */
    INDArray rows(int from, int to) {
        if (from < first || to > end() || from > to) {
            throw new IllegalStateException("Hidden rows " + from + ".." + to + " requested, stored " + first + ".." + end());
        }
        return RowOps.rows(rows, from - first, to - first);
    }

    /** Forgets positions before {@code position}. */
    void dropBefore(int position) {
        if (rows == null || position <= first) {
            return;
        }
        int oldEnd = end();
        rows = position >= oldEnd ? null : RowOps.rows(rows, position - first, oldEnd - first).dup('c');
        first = position;
    }
}
