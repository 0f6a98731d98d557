package org.dl4jmtp.spark;

import org.dl4jmtp.examples.data.DocumentIsolation;
import org.dl4jmtp.examples.data.PackedSequenceIterator;
import org.dl4jmtp.examples.data.TokenStream;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.api.MultiDataSet;

import java.io.Serializable;

/**
 * The training batches of a Spark run, built on the executors from the broadcast token stream: batch {@code b} is
 * exactly batch {@code b} of {@code train} on the same data and seed ({@link PackedSequenceIterator#training}: features
 * [mb,1,T] token ids, labels [mb,2,T] shifted labels and document ids). The packing lives in one place,
 * PackedSequenceIterator, so whatever it puts into a batch (e.g. a features mask for document isolation) reaches the
 * Spark workers unchanged.
 */
public final class TrainingBatches implements Serializable {

    private static final long serialVersionUID = 1L;

    private final int[] tokens;
    private final int[] documentIds;
    private final int vocabSize;
    private final int batchSize;
    private final int sequenceLength;
    private final long seed;
    private final String dataType;
    private final boolean documentIsolation;
    /** Rebuilt once per executor JVM copy of this object (not shipped). */
    private transient PackedSequenceIterator iterator;

    public TrainingBatches(TokenStream stream, int batchSize, int sequenceLength, long seed, DataType dataType) {
        this(stream, batchSize, sequenceLength, seed, dataType, true);
    }

    /** {@code documentIsolation}: the batches carry their document ids as the input mask, as {@code train}'s do. */
    public TrainingBatches(TokenStream stream, int batchSize, int sequenceLength, long seed, DataType dataType,
                           boolean documentIsolation) {
        this.tokens = stream.tokens();
        this.documentIds = stream.documentIds();
        this.vocabSize = stream.vocabSize();
        this.batchSize = batchSize;
        this.sequenceLength = sequenceLength;
        this.seed = seed;
        this.dataType = dataType.name();
        this.documentIsolation = documentIsolation;
        iterator();   // fails here, on the driver, for a stream shorter than one window
    }

    /** Training batch number {@code index} (deterministic: a function of the stream, seed and index only). */
    public synchronized MultiDataSet batch(long index) {
        PackedSequenceIterator it = iterator();
        it.setNextBatchIndex(index);
        return it.next();
    }

    public int batchSize() {
        return batchSize;
    }

    public int sequenceLength() {
        return sequenceLength;
    }

    private PackedSequenceIterator iterator() {
        if (iterator == null) {
            iterator = PackedSequenceIterator.training(new TokenStream(tokens, documentIds, vocabSize), batchSize,
                    sequenceLength, seed, Long.MAX_VALUE, DataType.valueOf(dataType));
            if (documentIsolation) {
                iterator.setPreProcessor(new DocumentIsolation());
            }
        }
        return iterator;
    }
}
