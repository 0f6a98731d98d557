package org.dl4jmtp.examples.data;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Generated text with structure a small model can learn at several ranges: spelling (fixed words), syntax (one
 * sentence pattern), agreement (each noun has two preferred verbs) and topic (each document favours one subject).
 * For example: {@code "The clever robot fixes the kernel quickly. The fox chases the owl. "}
 */
final class SyntheticText {

    private static final String[] NOUNS = {"cat", "dog", "bird", "fox", "robot", "wizard", "hacker", "kernel",
            "server", "compiler", "owl", "frog"};
    private static final String[] VERBS = {"sees", "likes", "finds", "chases", "builds", "fixes", "reads", "writes"};
    private static final String[] ADJECTIVES = {"small", "big", "red", "old", "quick", "lazy", "happy", "clever"};
    private static final String[] ADVERBS = {"quickly", "slowly", "again", "today"};

    private SyntheticText() {
    }

    static Corpus corpus(long seed, int documents, int charsPerDocument) {
        if (documents < 1 || charsPerDocument < 1) {
            throw new IllegalArgumentException("Need documents >= 1 and charsPerDocument >= 1, got "
                    + documents + " and " + charsPerDocument);
        }
        SplittableRandom random = new SplittableRandom(seed);
        List<Corpus.Document> docs = new ArrayList<>();
        for (int d = 0; d < documents; d++) {
            int topic = random.nextInt(NOUNS.length);
            StringBuilder text = new StringBuilder();
            while (text.length() < charsPerDocument) {
                sentence(random, topic, text);
            }
            text.setLength(charsPerDocument);
            docs.add(new Corpus.Document("synthetic-" + d, text.toString()));
        }
        return new Corpus("synthetic(seed=" + seed + ")", docs);
    }

    /** "The [adjective] subject verb the object [adverb]. " */
    private static void sentence(SplittableRandom random, int topic, StringBuilder out) {
        int subject = random.nextInt(2) == 0 ? topic : random.nextInt(NOUNS.length);
        out.append("The ");
        if (random.nextInt(3) == 0) {
            out.append(ADJECTIVES[random.nextInt(ADJECTIVES.length)]).append(' ');
        }
        out.append(NOUNS[subject]).append(' ');
        // agreement: subject i takes verb i or i+3 (mod 8)
        out.append(VERBS[(subject + 3 * random.nextInt(2)) % VERBS.length]).append(" the ");
        out.append(NOUNS[random.nextInt(NOUNS.length)]);
        if (random.nextInt(4) == 0) {
            out.append(' ').append(ADVERBS[random.nextInt(ADVERBS.length)]);
        }
        out.append(". ");
    }
}
