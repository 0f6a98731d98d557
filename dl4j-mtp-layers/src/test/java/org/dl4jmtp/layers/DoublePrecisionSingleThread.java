package org.dl4jmtp.layers;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * For a test class: ND4J defaults to DOUBLE and runs single-threaded (tiny arrays, thousands of ops: OpenMP threads
 * only add overhead, about 3x less CPU with one thread); the previous settings are restored afterwards.
 */
public final class DoublePrecisionSingleThread implements BeforeAllCallback, AfterAllCallback {

    private DataType previousDefault;
    private DataType previousFloatingDefault;
    private int previousMaxThreads;
    private int previousMaxMasterThreads;

    @Override
    public void beforeAll(ExtensionContext context) {
        previousDefault = Nd4j.dataType();
        previousFloatingDefault = Nd4j.defaultFloatingPointType();
        Nd4j.setDefaultDataTypes(DataType.DOUBLE, DataType.DOUBLE);
        previousMaxThreads = Nd4j.getEnvironment().maxThreads();
        previousMaxMasterThreads = Nd4j.getEnvironment().maxMasterThreads();
        Nd4j.getEnvironment().setMaxThreads(1);
        Nd4j.getEnvironment().setMaxMasterThreads(1);
    }

    @Override
    public void afterAll(ExtensionContext context) {
        Nd4j.setDefaultDataTypes(previousDefault, previousFloatingDefault);
        Nd4j.getEnvironment().setMaxThreads(previousMaxThreads);
        Nd4j.getEnvironment().setMaxMasterThreads(previousMaxMasterThreads);
    }
}
