package org.dl4jmtp.attention;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.factory.Nd4j;

/** Additive [n, n] masks made by ND4J's {@code triu} op, so that no mask is written element by element on the host. */
public final class TriangularMask {

    private TriangularMask() {
    }

    /**
     * {@code value} where column − row ≥ {@code from}, 0 elsewhere: {@code from} = 1 masks what lies above the
     * diagonal (causal), {@code from} = 0 the diagonal too.
     */
    public static INDArray fromDiagonal(int n, int from, double value, DataType type) {
        // zeroed: triu (like Nd4j.tri/triu, which allocate uninitialized) writes only the part it keeps
        INDArray out = Nd4j.zeros(type, n, n);
        Nd4j.exec(DynamicCustomOp.builder("triu").addInputs(Nd4j.valueArrayOf(new long[]{n, n}, value, type))
                .addOutputs(out).addIntegerArguments(from).build());
        return out;
    }
}
