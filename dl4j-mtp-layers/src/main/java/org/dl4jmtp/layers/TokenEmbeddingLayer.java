package org.dl4jmtp.layers;

import lombok.Data;
import lombok.EqualsAndHashCode;
import lombok.NoArgsConstructor;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.shade.jackson.databind.node.ObjectNode;

import java.util.Collection;
import java.util.Map;

/**
 * The shared token embedding: DL4J's {@link EmbeddingSequenceLayer} (same parameter, same math) whose mask is read as
 * the document id of each position (docs/model.md, "Packed documents") rather than multiplied into the embeddings,
 * and passed on to the layers after it.
 *
 * <p>With MTP the input holds {@link #getParts() parts} = 1 + D copies of the ids, part p rolled left by p
 * ({@code MtpInputIdsPreProcessor}). Given document ids, a slot of part p whose token lies in the next document is
 * set to token id 0, as the vacated tail of the roll is: each depth's input stays inside its document.
 */
@Data
@NoArgsConstructor
@EqualsAndHashCode(callSuper = true)
public class TokenEmbeddingLayer extends EmbeddingSequenceLayer {

    /** 1 + the number of MTP depths whose inputs follow the main ids along time. */
    private int parts = 1;

    /** {@code layer}'s settings (built with DL4J's builder) in this class, for {@code parts} copies of the ids. */
    public static TokenEmbeddingLayer of(EmbeddingSequenceLayer layer, int parts) {
        if (parts < 1) {
            throw new IllegalArgumentException("parts must be >= 1, got " + parts);
        }
        try {
            ObjectNode tree = NeuralNetConfiguration.mapper().valueToTree(layer);
            tree.put("@class", TokenEmbeddingLayer.class.getName());
            tree.put("parts", parts);
            return (TokenEmbeddingLayer) NeuralNetConfiguration.mapper()
                    .treeToValue(tree, org.deeplearning4j.nn.conf.layers.Layer.class);
        } catch (org.nd4j.shade.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("Cannot copy the embedding layer's settings", e);
        }
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
                                                       Collection<TrainingListener> trainingListeners, int layerIndex,
                                                       INDArray layerParamsView, boolean initializeParams,
                                                       DataType networkDataType) {
        Runtime layer = new Runtime(conf, networkDataType);
        layer.setListeners(trainingListeners);
        layer.setIndex(layerIndex);
        layer.setParamsViewArray(layerParamsView);
        Map<String, INDArray> paramTable = initializer().init(conf, layerParamsView, initializeParams);
        layer.setParamTable(paramTable);
        layer.setConf(conf);
        return layer;
    }

    /** DL4J's embedding runtime with the mask kept out of the arithmetic. */
    static final class Runtime extends org.deeplearning4j.nn.layers.feedforward.embedding.EmbeddingSequenceLayer {

        Runtime(NeuralNetConfiguration conf, DataType dataType) {
            super(conf, dataType);
        }

        @Override
        public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
            INDArray documentIds = maskArray;
            if (documentIds == null) {
                return super.activate(training, workspaceMgr);
            }
            // the ids stay replaced until backprop, which embeds the same slots again
            input = idsWithinDocuments(input, documentIds, workspaceMgr);
            maskArray = null;
            try {
                return super.activate(training, workspaceMgr);
            } finally {
                maskArray = documentIds;
            }
        }

        @Override
        public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
            INDArray documentIds = maskArray;
            maskArray = null;
            try {
                return super.backpropGradient(epsilon, workspaceMgr);
            } finally {
                maskArray = documentIds;
            }
        }

        /** [mb, 1, parts·T] ids with every MTP slot whose token is in another document than its position set to 0. */
        private INDArray idsWithinDocuments(INDArray ids, INDArray documentIds, LayerWorkspaceMgr workspaceMgr) {
            int parts = ((TokenEmbeddingLayer) layerConf()).getParts();
            long mb = ids.size(0);
            long length = ids.size(ids.rank() - 1);
            if (ids.rank() != 3 || ids.size(1) != 1 || length % parts != 0
                    || documentIds.rank() != 2 || documentIds.size(0) != mb || documentIds.size(1) != length) {
                throw new IllegalArgumentException("Layer " + layerConf().getLayerName() + ": token ids [mb, 1, "
                        + parts + "·T] need document ids [mb, " + parts + "·T], got ids "
                        + java.util.Arrays.toString(ids.shape()) + " and document ids "
                        + java.util.Arrays.toString(documentIds.shape()));
            }
            int time = (int) (length / parts);
            Documents documents = Documents.of(documentIds.get(NDArrayIndex.all(), NDArrayIndex.interval(0, time)),
                    (int) mb, time, ids.dataType());
            if (parts == 1 || documents == null) {
                return ids;
            }
            INDArray out = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, ids.dataType(), ids.shape(), 'c')
                    .assign(ids);
            for (int p = 1; p < parts && p < time; p++) {
                // slot t of part p holds token t + p: kept where t + p is in t's document
                INDArray keep = documents.sameAsEarlier(p).get(NDArrayIndex.all(), NDArrayIndex.interval(p, time));
                out.get(NDArrayIndex.all(), NDArrayIndex.point(0), NDArrayIndex.interval((long) p * time,
                        (long) p * time + time - p)).muli(keep.castTo(ids.dataType()));
            }
            return out;
        }
    }
}
