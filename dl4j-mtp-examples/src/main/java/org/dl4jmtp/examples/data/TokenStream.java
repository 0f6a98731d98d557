package org.dl4jmtp.examples.data;

import java.util.Arrays;

/**
 * A corpus as one sequence of token ids with the document id of every token, plus the position of each token in the
 * stream it was split from (so a train/validation split can be checked for overlap). Immutable.
 */
public final class TokenStream {

    /** A train/validation pair from {@link #split}. */
    public record Split(TokenStream train, TokenStream validation) {
    }

    private final int[] tokens;
    private final int[] documentIds;
    private final int[] positions;
    private final int vocabSize;

    /**
     * @param tokens      token ids in {@code [0, vocabSize)}
     * @param documentIds a non-negative document id per token; a document's tokens are contiguous
     */
    public TokenStream(int[] tokens, int[] documentIds, int vocabSize) {
        this(tokens.clone(), documentIds.clone(), identity(tokens.length), vocabSize);
    }

    private TokenStream(int[] tokens, int[] documentIds, int[] positions, int vocabSize) {
        if (tokens.length != documentIds.length) {
            throw new IllegalArgumentException("tokens and documentIds differ in length: "
                    + tokens.length + " vs " + documentIds.length);
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocabSize) {
                throw new IllegalArgumentException("Token " + tokens[i] + " at " + i + " outside [0, " + vocabSize + ")");
            }
            if (documentIds[i] < 0) {
                throw new IllegalArgumentException("Negative document id at " + i);
            }
        }
        this.tokens = tokens;
        this.documentIds = documentIds;
        this.positions = positions;
        this.vocabSize = vocabSize;
    }

    /** Every document of the corpus tokenized in order; document id = index in {@link Corpus#documents()}. */
    public static TokenStream encode(Corpus corpus, Tokenizer tokenizer) {
        int[][] encoded = new int[corpus.size()][];
        int total = 0;
        for (int d = 0; d < encoded.length; d++) {
            encoded[d] = tokenizer.encode(corpus.documents().get(d).text());
            total += encoded[d].length;
        }
        int[] tokens = new int[total];
        int[] documentIds = new int[total];
        int at = 0;
        for (int d = 0; d < encoded.length; d++) {
            System.arraycopy(encoded[d], 0, tokens, at, encoded[d].length);
            Arrays.fill(documentIds, at, at + encoded[d].length, d);
            at += encoded[d].length;
        }
        return new TokenStream(tokens, documentIds, identity(total), tokenizer.vocabSize());
    }

    /**
     * Holds out the last {@code validationFraction} of each document (rounded to whole tokens): the train stream keeps
     * every document's head, the validation stream every document's tail, both with their document ids and source
     * positions. The two never share a token.
     *
     * @param validationFraction in {@code [0, 1)}
     */
    public Split split(double validationFraction) {
        if (!(validationFraction >= 0 && validationFraction < 1)) {
            throw new IllegalArgumentException("validationFraction must be in [0, 1), got " + validationFraction);
        }
        int[] keepTrain = new int[tokens.length];   // 1 = train, 0 = validation
        int start = 0;
        while (start < tokens.length) {
            int end = start;
            while (end < tokens.length && documentIds[end] == documentIds[start]) {
                end++;
            }
            int validation = (int) Math.round((end - start) * validationFraction);
            Arrays.fill(keepTrain, start, end - validation, 1);
            start = end;
        }
        return new Split(select(keepTrain, 1), select(keepTrain, 0));
    }

    private TokenStream select(int[] flags, int flag) {
        int count = 0;
        for (int f : flags) {
            count += f == flag ? 1 : 0;
        }
        int[] t = new int[count];
        int[] d = new int[count];
        int[] p = new int[count];
        int j = 0;
        for (int i = 0; i < flags.length; i++) {
            if (flags[i] == flag) {
                t[j] = tokens[i];
                d[j] = documentIds[i];
                p[j] = positions[i];
                j++;
            }
        }
        return new TokenStream(t, d, p, vocabSize);
    }

    public int length() {
        return tokens.length;
    }

    public int vocabSize() {
        return vocabSize;
    }

    public int token(int i) {
        return tokens[i];
    }

    public int documentId(int i) {
        return documentIds[i];
    }

    /** Index of token {@code i} in the stream this one was split from (itself for an unsplit stream). */
    public int position(int i) {
        return positions[i];
    }

    /** A copy of the token ids. */
    public int[] tokens() {
        return tokens.clone();
    }

    /** A copy of the document ids. */
    public int[] documentIds() {
        return documentIds.clone();
    }

    /** A copy of the source positions. */
    public int[] positions() {
        return positions.clone();
    }

    /** Number of distinct documents (runs of equal document id). */
    public int documentCount() {
        int count = 0;
        for (int i = 0; i < documentIds.length; i++) {
            count += i == 0 || documentIds[i] != documentIds[i - 1] ? 1 : 0;
        }
        return count;
    }

    /** Entropy of the token unigram distribution, nats per token (0 for an empty stream). */
    public double unigramEntropyNats() {
        long[] counts = new long[vocabSize];
        for (int t : tokens) {
            counts[t]++;
        }
        double h = 0;
        for (long c : counts) {
            if (c > 0) {
                double p = (double) c / tokens.length;
                h -= p * Math.log(p);
            }
        }
        return h;
    }

    /**
     * Conditional entropy H(next | current) over pairs of consecutive tokens of the same document, nats per token:
     * what a model that sees only the previous token can reach.
     */
    public double conditionalBigramEntropyNats() {
        long[] pairs = new long[tokens.length];
        int n = 0;
        for (int i = 0; i + 1 < tokens.length; i++) {
            if (documentIds[i] == documentIds[i + 1]) {
                pairs[n++] = (long) tokens[i] * vocabSize + tokens[i + 1];
            }
        }
        if (n == 0) {
            return 0;
        }
        pairs = Arrays.copyOf(pairs, n);
        Arrays.sort(pairs);
        long[] firstCounts = new long[vocabSize];
        for (long pair : pairs) {
            firstCounts[(int) (pair / vocabSize)]++;
        }
        // H(Y|X) = -Σ p(x,y) ln p(y|x), p(y|x) = c(x,y)/c(x)
        double h = 0;
        int i = 0;
        while (i < n) {
            int j = i;
            while (j < n && pairs[j] == pairs[i]) {
                j++;
            }
            long joint = j - i;
            long first = firstCounts[(int) (pairs[i] / vocabSize)];
            h -= (double) joint / n * Math.log((double) joint / first);
            i = j;
        }
        return h;
    }

    @Override
    public String toString() {
        return "TokenStream(" + tokens.length + " tokens, " + documentCount() + " documents, vocab " + vocabSize + ")";
    }

    private static int[] identity(int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        return p;
    }
}
