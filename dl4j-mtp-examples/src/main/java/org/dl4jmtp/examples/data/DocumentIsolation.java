package org.dl4jmtp.examples.data;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.MultiDataSetPreProcessor;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Turns on document isolation for a packed batch ({@link PackedSequenceIterator}'s layout): the document ids of
 * label channel 1 become the features mask of {@code input_ids}, which every layer of a NemotronV3 graph reads as
 * "which document is each position in" (docs/model.md, "Packed documents"). Without it the documents of a window
 * see each other in attention, the Mamba2 conv and the SSM state; the loss keeps its targets inside the documents
 * either way.
 */
public final class DocumentIsolation implements MultiDataSetPreProcessor {

    @Override
    public void preProcess(MultiDataSet batch) {
        INDArray labels = batch.getLabels(0);
        if (labels.rank() != 3 || labels.size(1) != 2) {
            throw new IllegalArgumentException("Document isolation needs labels [mb, 2, T] with the document ids in "
                    + "channel 1, got " + java.util.Arrays.toString(labels.shape()));
        }
        INDArray documents = labels.get(NDArrayIndex.all(), NDArrayIndex.point(1), NDArrayIndex.all()).dup('c');
        batch.setFeaturesMaskArrays(new INDArray[]{documents});
    }
}
