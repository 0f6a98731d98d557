package org.dl4jmtp.examples.train;

import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;

/** Where the trainer's batches come from: features [mb,1,T], labels [mb,2,T] (labels, document ids). */
public interface TrainingData {

    /** Training batches starting at batch number {@code firstBatch} (deterministic: batch b is always the same). */
    MultiDataSetIterator training(long firstBatch);

    /** The held-out batches (never overlapping the training range), resettable. */
    MultiDataSetIterator validation();

    /** One line for the log: corpus, tokenizer, token counts. */
    String describe();
}
