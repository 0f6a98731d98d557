package org.dl4jmtp.examples;

/**
 * A problem with what the user gave the command line (a missing or malformed file, an out-of-range token id, a shape
 * mismatch): reported as one clear message and exit code 1, never as a stack trace.
 */
public final class UserException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    public UserException(String message) {
        super(message);
    }

    public UserException(String message, Throwable cause) {
        super(message, cause);
    }
}
