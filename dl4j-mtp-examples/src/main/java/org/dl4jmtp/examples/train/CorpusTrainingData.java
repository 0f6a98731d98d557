package org.dl4jmtp.examples.train;

import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.examples.data.DocumentIsolation;
import org.dl4jmtp.examples.data.PackedSequenceIterator;
import org.dl4jmtp.examples.data.TokenStream;
import org.dl4jmtp.examples.data.Tokenizer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;

/** Training data from a corpus: tokenised once, split by byte range per document into training and validation. */
public final class CorpusTrainingData implements TrainingData {

    private final Corpus corpus;
    private final Tokenizer tokenizer;
    private final TokenStream.Split split;
    private final TrainOptions options;
    private final PackedSequenceIterator validation;

    public CorpusTrainingData(Corpus corpus, Tokenizer tokenizer, double validationFraction, TrainOptions options) {
        this.corpus = corpus;
        this.tokenizer = tokenizer;
        this.options = options;
        this.split = TokenStream.encode(corpus, tokenizer).split(validationFraction);
        this.validation = isolated(PackedSequenceIterator.validation(split.validation(), options.batchSize(),
                options.seqLen(), options.evalBatches(), options.nd4jDataType()));
    }

    /** The iterator with the documents isolated when the run isolates them. */
    private PackedSequenceIterator isolated(PackedSequenceIterator it) {
        if (options.documentIsolation()) {
            it.setPreProcessor(new DocumentIsolation());
        }
        return it;
    }

    @Override
    public MultiDataSetIterator training(long firstBatch) {
        PackedSequenceIterator it = isolated(PackedSequenceIterator.training(split.train(), options.batchSize(),
                options.seqLen(), options.seed(), options.steps(), options.nd4jDataType()));
        it.setNextBatchIndex(firstBatch);
        return it;
    }

    @Override
    public MultiDataSetIterator validation() {
        validation.reset();
        return validation;
    }

    /** The training part of the token stream (what {@link #training} packs into windows). */
    public TokenStream trainingStream() {
        return split.train();
    }

    /** Unigram entropy of the training tokens, nats per token: the loss of a model that ignores context. */
    public double unigramEntropyNats() {
        return split.train().unigramEntropyNats();
    }

    @Override
    public String describe() {
        return String.format("corpus %s (%d documents, %,d bytes), tokenizer %s, %,d training / %,d validation tokens,"
                + " packed documents %s", corpus.name(), corpus.size(), corpus.totalBytes(), tokenizer.name(),
                split.train().length(), split.validation().length(),
                options.documentIsolation() ? "isolated" : "not isolated (--no-doc-isolation)");
    }

    public DataType dataType() {
        return options.nd4jDataType();
    }
}
