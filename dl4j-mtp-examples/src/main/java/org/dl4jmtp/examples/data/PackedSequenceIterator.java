package org.dl4jmtp.examples.data;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.MultiDataSetPreProcessor;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;

import java.util.NoSuchElementException;
import java.util.SplittableRandom;

/**
 * Packs a {@link TokenStream} into windows of {@code T} positions for the MTP model:
 * <ul>
 *   <li>features {@code [mb, 1, T]}: the token ids (as floating point)</li>
 *   <li>labels {@code [mb, 2, T]}: channel 0 the pre-shifted labels, {@code label[t] = token[t+1]} when
 *       {@code token[t+1]} is in the same document as {@code token[t]}, else {@code -100} (ignored); channel 1 the
 *       document id of position t, which the MTP loss uses to ignore every depth-d target with
 *       {@code doc[t+d] != doc[t]}. Ids are written modulo 2^24 so that they are exact in float; that keeps "same
 *       document or not" exact inside any window.</li>
 * </ul>
 * Two modes:
 * <ul>
 *   <li>{@link #training}: batch b holds windows at random starts drawn from a generator seeded by (seed, b) only,
 *       so a resumed run continues the same data order with {@link #setNextBatchIndex}. {@code numBatches} batches,
 *       then {@code hasNext()} is false; {@link #reset()} goes back to batch 0.</li>
 *   <li>{@link #validation}: windows at {@code 0, T, 2T, …} so that every token of the stream is predicted exactly
 *       once (the last window is padded after the stream's end: token 0, label -100, document -1); when there are more than
 *       {@code maxBatches · mb} windows, that many are taken evenly spread, in order. Resettable.</li>
 * </ul>
 * Not thread-safe; {@code asyncSupported()} is false (the batches are cheap to build, and a prefetching wrapper would
 * run ahead of {@link #nextBatchIndex()}).
 */
public final class PackedSequenceIterator implements MultiDataSetIterator {

    /** Label of a position that has no target. */
    public static final int IGNORE_INDEX = -100;
    /** Document id of padding positions. */
    public static final int PADDING_DOCUMENT = -1;
    /** Document ids are written modulo this (2^24: every integer below it is exact in float). */
    public static final int DOCUMENT_ID_MODULUS = 1 << 24;

    private final TokenStream stream;
    private final int batchSize;
    private final int sequenceLength;
    private final DataType dataType;
    private final boolean training;
    private final long seed;
    private final long numBatches;
    private final int[] validationStarts;

    private long nextBatch;
    private int nextWindow;
    private int[] lastStarts = new int[0];
    private MultiDataSetPreProcessor preProcessor;

    private PackedSequenceIterator(TokenStream stream, int batchSize, int sequenceLength, DataType dataType,
                                   boolean training, long seed, long numBatches, int[] validationStarts) {
        if (batchSize < 1 || sequenceLength < 1) {
            throw new IllegalArgumentException("batchSize and sequenceLength must be >= 1, got "
                    + batchSize + ", " + sequenceLength);
        }
        if (dataType != DataType.FLOAT && dataType != DataType.DOUBLE) {
            throw new IllegalArgumentException("dataType must be FLOAT or DOUBLE, got " + dataType);
        }
        if (stream.vocabSize() > DOCUMENT_ID_MODULUS) {
            throw new IllegalArgumentException("Vocabulary too large for exact float token ids: " + stream.vocabSize());
        }
        this.stream = stream;
        this.batchSize = batchSize;
        this.sequenceLength = sequenceLength;
        this.dataType = dataType;
        this.training = training;
        this.seed = seed;
        this.numBatches = numBatches;
        this.validationStarts = validationStarts;
    }

    /**
     * Random windows for training; batch b is a function of (seed, b) only.
     *
     * @param numBatches how many batches before {@code hasNext()} is false ({@code Long.MAX_VALUE}: unbounded)
     * @throws IllegalArgumentException if the stream is shorter than one window ({@code sequenceLength + 1} tokens)
     */
    public static PackedSequenceIterator training(TokenStream stream, int batchSize, int sequenceLength, long seed,
                                                  long numBatches, DataType dataType) {
        if (stream.length() < sequenceLength + 1) {
            throw new IllegalArgumentException("The training stream has " + stream.length() + " tokens; a window needs "
                    + (sequenceLength + 1) + ". Use a shorter sequence length or a larger corpus.");
        }
        if (numBatches < 0) {
            throw new IllegalArgumentException("numBatches must be >= 0, got " + numBatches);
        }
        return new PackedSequenceIterator(stream, batchSize, sequenceLength, dataType, true, seed, numBatches, null);
    }

    /**
     * Fixed, non-overlapping windows covering the stream in order, at most {@code maxBatches} batches.
     */
    public static PackedSequenceIterator validation(TokenStream stream, int batchSize, int sequenceLength,
                                                    int maxBatches, DataType dataType) {
        if (maxBatches < 1) {
            throw new IllegalArgumentException("maxBatches must be >= 1, got " + maxBatches);
        }
        int predicted = Math.max(stream.length() - 1, 0);            // positions that have a next token
        int all = (predicted + sequenceLength - 1) / Math.max(sequenceLength, 1);
        int count = (int) Math.min(all, (long) maxBatches * batchSize);
        int[] starts = new int[count];
        for (int i = 0; i < count; i++) {
            long window = count == all ? i : (long) i * all / count;   // evenly spread when capped
            starts[i] = (int) (window * sequenceLength);
        }
        return new PackedSequenceIterator(stream, batchSize, sequenceLength, dataType, false, 0, 0, starts);
    }

    /** The window starts of training batch {@code batchIndex}, without advancing. */
    public int[] trainingWindowStarts(long batchIndex, int rows) {
        if (!training) {
            throw new IllegalStateException("Not a training iterator");
        }
        SplittableRandom random = new SplittableRandom(seed * 1_000_003L + batchIndex);
        int bound = stream.length() - sequenceLength;                  // starts in [0, n - T - 1]
        int[] starts = new int[rows];
        for (int r = 0; r < rows; r++) {
            starts[r] = random.nextInt(bound);
        }
        return starts;
    }

    @Override
    public boolean hasNext() {
        return training ? nextBatch < numBatches : nextWindow < validationStarts.length;
    }

    @Override
    public MultiDataSet next() {
        return next(batchSize);
    }

    /** The next batch with {@code num} rows (a final validation batch may have fewer). */
    @Override
    public MultiDataSet next(int num) {
        if (!hasNext()) {
            throw new NoSuchElementException(training ? "All " + numBatches + " training batches produced"
                    : "Validation windows exhausted; call reset()");
        }
        int[] starts;
        if (training) {
            starts = trainingWindowStarts(nextBatch, num);
            nextBatch++;
        } else {
            int rows = Math.min(num, validationStarts.length - nextWindow);
            starts = new int[rows];
            System.arraycopy(validationStarts, nextWindow, starts, 0, rows);
            nextWindow += rows;
        }
        lastStarts = starts;
        MultiDataSet batch = build(starts);
        if (preProcessor != null) {
            preProcessor.preProcess(batch);
        }
        return batch;
    }

    private MultiDataSet build(int[] starts) {
        int rows = starts.length;
        int t = sequenceLength;
        double[] features = new double[rows * t];
        double[] labels = new double[rows * 2 * t];
        int n = stream.length();
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < t; i++) {
                int p = starts[r] + i;
                int labelAt = (r * 2) * t + i;
                int documentAt = (r * 2 + 1) * t + i;
                if (p < n) {                                           // a real position (always, in training)
                    int document = stream.documentId(p);
                    boolean hasTarget = p + 1 < n && stream.documentId(p + 1) == document;
                    features[r * t + i] = stream.token(p);
                    labels[labelAt] = hasTarget ? stream.token(p + 1) : IGNORE_INDEX;
                    labels[documentAt] = document % DOCUMENT_ID_MODULUS;
                } else {                                               // padding after the end of the stream
                    features[r * t + i] = 0;
                    labels[labelAt] = IGNORE_INDEX;
                    labels[documentAt] = PADDING_DOCUMENT;
                }
            }
        }
        INDArray f = Nd4j.create(features, new long[]{rows, 1, t}, dataType);
        INDArray l = Nd4j.create(labels, new long[]{rows, 2, t}, dataType);
        return new org.nd4j.linalg.dataset.MultiDataSet(new INDArray[]{f}, new INDArray[]{l});
    }

    /** The index of the batch the next {@link #next()} produces (training: the batch number; validation: batches served). */
    public long nextBatchIndex() {
        return training ? nextBatch : (nextWindow + batchSize - 1) / batchSize;
    }

    /**
     * Continue from batch {@code batchIndex} (e.g. the step count of a resumed run): the next batch is exactly the one
     * an uninterrupted run produced at that index. Training mode only.
     */
    public void setNextBatchIndex(long batchIndex) {
        if (!training) {
            throw new IllegalStateException("setNextBatchIndex is for training iterators; use reset() for validation");
        }
        if (batchIndex < 0) {
            throw new IllegalArgumentException("batchIndex must be >= 0, got " + batchIndex);
        }
        nextBatch = batchIndex;
    }

    /** Number of batches one pass produces: {@code numBatches} in training, the validation batch count otherwise. */
    public long totalBatches() {
        return training ? numBatches : (validationStarts.length + batchSize - 1) / batchSize;
    }

    /** Number of validation windows (0 in training mode). */
    public int windowCount() {
        return training ? 0 : validationStarts.length;
    }

    /** Start positions (in the stream) of the rows of the last batch. */
    public int[] lastWindowStarts() {
        return lastStarts.clone();
    }

    /**
     * The tokens of the rows of the last batch: {@code T + 1} each (inputs plus the token after the last), fewer for
     * a validation window cut by the end of the stream.
     */
    public int[][] lastWindows() {
        int[][] windows = new int[lastStarts.length][];
        for (int r = 0; r < lastStarts.length; r++) {
            int end = Math.min(lastStarts[r] + sequenceLength + 1, stream.length());
            windows[r] = new int[end - lastStarts[r]];
            for (int p = lastStarts[r]; p < end; p++) {
                windows[r][p - lastStarts[r]] = stream.token(p);
            }
        }
        return windows;
    }

    public boolean isTraining() {
        return training;
    }

    public int batchSize() {
        return batchSize;
    }

    public int sequenceLength() {
        return sequenceLength;
    }

    public TokenStream stream() {
        return stream;
    }

    @Override
    public void setPreProcessor(MultiDataSetPreProcessor preProcessor) {
        this.preProcessor = preProcessor;
    }

    @Override
    public MultiDataSetPreProcessor getPreProcessor() {
        return preProcessor;
    }

    @Override
    public boolean resetSupported() {
        return true;
    }

    @Override
    public boolean asyncSupported() {
        return false;
    }

    /** Back to the first batch (training: batch 0). */
    @Override
    public void reset() {
        nextBatch = 0;
        nextWindow = 0;
    }
}
