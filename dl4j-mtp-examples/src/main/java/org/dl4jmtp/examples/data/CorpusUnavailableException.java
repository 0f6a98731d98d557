package org.dl4jmtp.examples.data;

/**
 * The default corpus could not be obtained. The message ends with how to pass a corpus of one's own, so a command
 * line can print it as is.
 */
public final class CorpusUnavailableException extends RuntimeException {

    /** How to train on one's own text; appended to every message. */
    public static final String HINT = "Pass your own text instead: --corpus FILE (a UTF-8 text file) "
            + "or --corpus DIR (a folder of .txt files, one document each).";

    public CorpusUnavailableException(String reason, Throwable cause) {
        super(reason + ". " + HINT, cause);
    }
}
