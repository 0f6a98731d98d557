package org.dl4jmtp.examples.data;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;

import java.util.ArrayList;
import java.util.List;
import java.util.NoSuchElementException;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PackedSequenceIteratorTest {

    private static final int MB = 4;
    private static final int T = 32;

    /** 10 short documents, so that most windows cross a document boundary. */
    private final TokenStream stream = Corpus.synthetic(11, 10, 50).encode(new ByteTokenizer());

    @Test
    void trainingBatchesHaveTheModelShapesAndDataType() {
        for (DataType type : new DataType[]{DataType.FLOAT, DataType.DOUBLE}) {
            PackedSequenceIterator it = PackedSequenceIterator.training(stream, MB, T, 1, 3, type);
            MultiDataSet batch = it.next();
            assertEquals(1, batch.getFeatures().length);
            assertEquals(1, batch.getLabels().length);
            assertArrayEquals(new long[]{MB, 1, T}, batch.getFeatures(0).shape());
            assertArrayEquals(new long[]{MB, 2, T}, batch.getLabels(0).shape());
            assertEquals(type, batch.getFeatures(0).dataType());
            assertEquals(type, batch.getLabels(0).dataType());
        }
    }

    @Test
    void labelsAreTheNextTokenExceptAcrossDocumentBoundaries() {
        PackedSequenceIterator it = PackedSequenceIterator.training(stream, MB, T, 5, 20, DataType.FLOAT);
        int boundaries = 0;
        while (it.hasNext()) {
            MultiDataSet batch = it.next();
            int[] starts = it.lastWindowStarts();
            int[][] windows = it.lastWindows();
            for (int r = 0; r < MB; r++) {
                assertEquals(T + 1, windows[r].length);
                for (int t = 0; t < T; t++) {
                    int p = starts[r] + t;
                    assertEquals(stream.token(p), (int) batch.getFeatures(0).getDouble(r, 0, t));
                    assertEquals(windows[r][t], stream.token(p));
                    boolean sameDocument = stream.documentId(p + 1) == stream.documentId(p);
                    int expected = sameDocument ? stream.token(p + 1) : PackedSequenceIterator.IGNORE_INDEX;
                    assertEquals(expected, (int) batch.getLabels(0).getDouble(r, 0, t), "row " + r + " t " + t);
                    assertEquals(stream.documentId(p), (int) batch.getLabels(0).getDouble(r, 1, t));
                    boundaries += sameDocument ? 0 : 1;
                }
            }
        }
        assertTrue(boundaries > 20, "boundaries seen: " + boundaries);
    }

    @Test
    void minusOneHundredMarksExactlyTheLastTokenOfEachDocument() {
        // three documents of lengths 5, 3, 4 → labels ignored at positions 4, 7 (and 11 has no next token)
        int[] tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
        int[] documents = {0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2};
        TokenStream small = new TokenStream(tokens, documents, 16);
        PackedSequenceIterator it = PackedSequenceIterator.validation(small, 1, 11, 1, DataType.DOUBLE);
        INDArray labels = it.next().getLabels(0);
        double[] expectedLabels = {2, 3, 4, 5, -100, 7, 8, -100, 10, 11, 12};
        double[] expectedDocuments = {0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
        assertArrayEquals(expectedLabels, labels.get(org.nd4j.linalg.indexing.NDArrayIndex.point(0),
                org.nd4j.linalg.indexing.NDArrayIndex.point(0)).toDoubleVector());
        assertArrayEquals(expectedDocuments, labels.get(org.nd4j.linalg.indexing.NDArrayIndex.point(0),
                org.nd4j.linalg.indexing.NDArrayIndex.point(1)).toDoubleVector());
        assertFalse(it.hasNext());
    }

    @Test
    void sameSeedSameBatchesAndResumeReproducesBatchB() {
        PackedSequenceIterator a = PackedSequenceIterator.training(stream, MB, T, 42, 10, DataType.DOUBLE);
        PackedSequenceIterator b = PackedSequenceIterator.training(stream, MB, T, 42, 10, DataType.DOUBLE);
        List<MultiDataSet> first = new ArrayList<>();
        while (a.hasNext()) {
            MultiDataSet x = a.next();
            first.add(x);
            MultiDataSet y = b.next();
            assertEquals(x.getFeatures(0), y.getFeatures(0));
            assertEquals(x.getLabels(0), y.getLabels(0));
        }
        assertEquals(10, first.size());
        assertThrows(NoSuchElementException.class, a::next);

        // a resumed run: a fresh iterator told to continue at batch 6
        PackedSequenceIterator resumed = PackedSequenceIterator.training(stream, MB, T, 42, 10, DataType.DOUBLE);
        resumed.setNextBatchIndex(6);
        assertEquals(6, resumed.nextBatchIndex());
        for (int batch = 6; batch < 10; batch++) {
            MultiDataSet x = resumed.next();
            assertEquals(first.get(batch).getFeatures(0), x.getFeatures(0), "batch " + batch);
            assertEquals(first.get(batch).getLabels(0), x.getLabels(0), "batch " + batch);
        }
        assertFalse(resumed.hasNext());

        a.reset();
        assertEquals(0, a.nextBatchIndex());
        assertEquals(first.get(0).getFeatures(0), a.next().getFeatures(0));
    }

    @Test
    void differentSeedsAndDifferentBatchesDiffer() {
        PackedSequenceIterator a = PackedSequenceIterator.training(stream, MB, T, 1, 2, DataType.DOUBLE);
        PackedSequenceIterator b = PackedSequenceIterator.training(stream, MB, T, 2, 2, DataType.DOUBLE);
        int[] a0 = a.trainingWindowStarts(0, MB);
        assertNotEquals(java.util.Arrays.toString(a0), java.util.Arrays.toString(b.trainingWindowStarts(0, MB)));
        assertNotEquals(java.util.Arrays.toString(a0), java.util.Arrays.toString(a.trainingWindowStarts(1, MB)));
        assertNotEquals(a.next().getFeatures(0), b.next().getFeatures(0));
    }

    @Test
    void trainingWindowsSpanTheWholeStream() {
        PackedSequenceIterator it = PackedSequenceIterator.training(stream, MB, T, 3, 1, DataType.FLOAT);
        int min = Integer.MAX_VALUE;
        int max = 0;
        for (int b = 0; b < 500; b++) {
            for (int s : it.trainingWindowStarts(b, MB)) {
                min = Math.min(min, s);
                max = Math.max(max, s);
            }
        }
        assertEquals(0, min);
        assertEquals(stream.length() - T - 1, max);             // the last full window ends at the last token
    }

    @Test
    void validationCoversEveryPredictedPositionExactlyOnceInOrder() {
        TokenStream validation = Corpus.synthetic(5, 6, 200).encode(new ByteTokenizer()).split(0.3).validation();
        PackedSequenceIterator it = PackedSequenceIterator.validation(validation, MB, T, 1000, DataType.FLOAT);
        assertEquals((validation.length() - 1 + T - 1) / T, it.windowCount());
        assertEquals((it.windowCount() + MB - 1) / MB, it.totalBatches());

        for (int pass = 0; pass < 2; pass++) {                    // resettable: the same windows twice
            int[] seen = new int[validation.length()];
            int expectedStart = 0;
            int batches = 0;
            while (it.hasNext()) {
                MultiDataSet batch = it.next();
                batches++;
                INDArray features = batch.getFeatures(0);
                INDArray labels = batch.getLabels(0);
                int[] starts = it.lastWindowStarts();
                assertEquals(starts.length, features.size(0));
                for (int r = 0; r < starts.length; r++) {
                    assertEquals(expectedStart, starts[r]);
                    expectedStart += T;
                    for (int t = 0; t < T; t++) {
                        int p = starts[r] + t;
                        double label = labels.getDouble(r, 0, t);
                        if (p < validation.length()) {
                            seen[p]++;
                            boolean hasTarget = p + 1 < validation.length()
                                    && validation.documentId(p + 1) == validation.documentId(p);
                            assertEquals(hasTarget ? validation.token(p + 1) : -100, (int) label);
                            assertEquals(validation.token(p), (int) features.getDouble(r, 0, t));
                            assertEquals(validation.documentId(p), (int) labels.getDouble(r, 1, t));
                        } else {                                  // padding after the end
                            assertEquals(-100, label);
                            assertEquals(PackedSequenceIterator.PADDING_DOCUMENT, (int) labels.getDouble(r, 1, t));
                        }
                    }
                }
            }
            assertEquals(it.totalBatches(), batches);
            for (int p = 0; p + 1 < validation.length(); p++) {   // every position that has a next token
                assertEquals(1, seen[p], "position " + p);
            }
            assertTrue(seen[validation.length() - 1] <= 1);
            it.reset();
        }
    }

    @Test
    void validationIsCappedByEvenlySpreadWindows() {
        PackedSequenceIterator all = PackedSequenceIterator.validation(stream, 2, 8, 1000, DataType.FLOAT);
        PackedSequenceIterator capped = PackedSequenceIterator.validation(stream, 2, 8, 3, DataType.FLOAT);
        assertTrue(all.windowCount() > 6);
        assertEquals(6, capped.windowCount());
        assertEquals(3, capped.totalBatches());
        int previous = -8;
        int last = 0;
        while (capped.hasNext()) {
            capped.next();
            for (int s : capped.lastWindowStarts()) {
                assertEquals(0, s % 8);
                assertTrue(s >= previous + 8, "overlap at " + s);
                previous = s;
                last = s;
            }
        }
        assertTrue(last > stream.length() / 2, "windows should spread over the stream, last at " + last);
    }

    @Test
    void preProcessorIsApplied() {
        PackedSequenceIterator it = PackedSequenceIterator.training(stream, MB, T, 1, 1, DataType.FLOAT);
        it.setPreProcessor(batch -> batch.getFeatures(0).assign(7));
        assertEquals(7.0, it.next().getFeatures(0).maxNumber().doubleValue());
        assertTrue(it.resetSupported());
        assertFalse(it.asyncSupported());
    }

    @Test
    void rejectsAStreamShorterThanOneWindow() {
        TokenStream tiny = new TokenStream(new int[]{1, 2, 3}, new int[]{0, 0, 0}, 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PackedSequenceIterator.training(tiny, 1, 3, 0, 1, DataType.FLOAT));
        assertTrue(e.getMessage().contains("needs 4"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> PackedSequenceIterator.training(stream, 1, 3, 0, 1, DataType.INT));
    }
}
