package org.dl4jmtp.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A safetensors file (or a sharded checkpoint index) is malformed. The message always starts with the offending file,
 * followed by what is wrong with it, e.g. {@code "/ckpt/model.safetensors: tensor 'w': unknown dtype 'F8'"}.
 */
public class SafetensorsFormatException extends IOException {

    private static final long serialVersionUID = 1L;

    /** @param file the file being read; {@code null} when the problem is not tied to a file (e.g. a dtype name) */
    public SafetensorsFormatException(Path file, String problem) {
        super(file == null ? problem : file + ": " + problem);
    }

    /** Same, keeping the underlying parser or decoder error as the cause. */
    public SafetensorsFormatException(Path file, String problem, Throwable cause) {
        super(file == null ? problem : file + ": " + problem, cause);
    }
}
