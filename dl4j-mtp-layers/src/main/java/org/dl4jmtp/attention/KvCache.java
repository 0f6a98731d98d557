package org.dl4jmtp.attention;

import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The key/value cache of one attention block: rows [position, nkv·head_dim], grown by doubling. */
public final class KvCache implements LayerState {

    private static final int INITIAL_CAPACITY = 64;

    private final int width;
    private final DataType dataType;
    private INDArray keys;
    private INDArray values;
    private int length;

    public KvCache(int width, DataType dataType) {
        this.width = width;
        this.dataType = dataType;
        this.keys = Nd4j.create(dataType, INITIAL_CAPACITY, width);
        this.values = Nd4j.create(dataType, INITIAL_CAPACITY, width);
    }

    /** Appends the keys and values [n, width] of n new positions. */
    public void append(INDArray newKeys, INDArray newValues) {
        INDArray[] rows = appendRows((int) newKeys.size(0));
        rows[0].assign(newKeys);
        rows[1].assign(newValues);
    }

    /**
     * Appends n positions and returns the views [n, width] of their keys and values (contiguous rows), for the caller
     * to write, e.g. as the output of the projection: no copy of the new rows.
     */
    public INDArray[] appendRows(int n) {
        ensureCapacity(length + n);
        INDArray[] rows = {RowOps.rows(keys, length, length + n), RowOps.rows(values, length, length + n)};
        length += n;
        return rows;
    }

    /** Keys of every cached position, [length, width] (a view, valid until the next append). */
    public INDArray keys() {
        return RowOps.rows(keys, 0, length);
    }

    /** Values of every cached position, [length, width] (a view, valid until the next append). */
    public INDArray values() {
        return RowOps.rows(values, 0, length);
    }

    public int length() {
        return length;
    }

    @Override
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalStateException("KV cache of " + length + " positions cannot be truncated to " + newLength);
        }
        length = newLength;
    }

    private void ensureCapacity(int needed) {
        if (needed <= keys.size(0)) {
            return;
        }
        long capacity = Math.max(needed, 2 * keys.size(0));
        keys = grown(keys, capacity);
        values = grown(values, capacity);
    }

    private INDArray grown(INDArray old, long capacity) {
        INDArray out = Nd4j.create(dataType, capacity, width);
        if (length > 0) {
            RowOps.rows(out, 0, length).assign(RowOps.rows(old, 0, length));
        }
        return out;
    }
}
