package org.dl4jmtp.graph;

import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.conf.graph.MergeVertex;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.graph.vertex.GraphVertex;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.Arrays;

/**
 * DL4J's {@link MergeVertex} for the joins of a NemotronV3 graph, passing the document ids of its inputs on
 * (docs/model.md, "Packed documents"). DL4J's merge ORs its inputs' masks into a boolean one, which would turn the
 * document ids the layers after it read into 0/1; every input of these joins carries the same positions, so the same
 * ids, and this vertex passes them on as they are, refusing inputs whose ids differ.
 */
public class DocumentMergeVertex extends MergeVertex {

    @Override
    public DocumentMergeVertex clone() {
        DocumentMergeVertex copy = new DocumentMergeVertex();
        copy.setMergeAxis(getMergeAxis());
        return copy;
    }

    @Override
    public GraphVertex instantiate(ComputationGraph graph, String name, int idx, INDArray paramsView,
                                   boolean initializeParams, DataType networkDatatype) {
        return new Runtime(graph, name, idx, networkDatatype, getMergeAxis());
    }

    /** The merge itself is DL4J's; only the masks differ. */
    static final class Runtime extends org.deeplearning4j.nn.graph.vertex.impl.MergeVertex {

        Runtime(ComputationGraph graph, String name, int vertexIndex, DataType dataType, int mergeAxis) {
            super(graph, name, vertexIndex, dataType, mergeAxis);
        }

        @Override
        public Pair<INDArray, MaskState> feedForwardMaskArrays(INDArray[] maskArrays, MaskState currentMaskState,
                                                               int minibatchSize) {
            if (maskArrays == null || Arrays.stream(maskArrays).allMatch(m -> m == null)) {
                return new Pair<>(null, currentMaskState);
            }
            for (int i = 0; i < maskArrays.length; i++) {
                if (maskArrays[i] == null || !maskArrays[i].equalShapes(maskArrays[0])
                        || !maskArrays[i].equals(maskArrays[0])) {
                    throw new IllegalStateException("Vertex " + getVertexName() + ": input " + i + " carries other "
                            + "document ids than input 0 (" + (maskArrays[i] == null ? "none"
                            : Arrays.toString(maskArrays[i].shape())) + " vs " + Arrays.toString(maskArrays[0].shape())
                            + "); every input of a NemotronV3 join must carry the ids of the same positions");
                }
            }
            return new Pair<>(maskArrays[0], currentMaskState);
        }
    }
}
