package org.dl4jmtp.examples;

import org.nd4j.linalg.api.buffer.DataType;

/** {@code --dtype}: the precision the model is built and run in. */
public enum Precision {
    FLOAT(DataType.FLOAT),
    DOUBLE(DataType.DOUBLE);

    private final DataType dataType;

    Precision(DataType dataType) {
        this.dataType = dataType;
    }

    public DataType dataType() {
        return dataType;
    }

    @Override
    public String toString() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
