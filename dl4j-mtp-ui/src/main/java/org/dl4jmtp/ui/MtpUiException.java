package org.dl4jmtp.ui;

/** The training UI cannot start or cannot open a stats file; the message is meant for the user. */
public class MtpUiException extends RuntimeException {

    public MtpUiException(String message) {
        super(message);
    }

    public MtpUiException(String message, Throwable cause) {
        super(message, cause);
    }
}
