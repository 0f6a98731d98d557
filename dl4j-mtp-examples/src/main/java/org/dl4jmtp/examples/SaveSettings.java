package org.dl4jmtp.examples;

import org.dl4jmtp.io.HfCheckpointWriter;
import org.dl4jmtp.io.SafetensorsDType;
import org.dl4jmtp.model.NemotronV3ForCausalLM;

/** {@code --save-dtype} and {@code --max-shard-size}: parsed into {@link NemotronV3ForCausalLM.SaveOptions}. */
public final class SaveSettings {

    private SaveSettings() {
    }

    /**
     * {@code float32}, {@code bfloat16} or {@code float16} (case-insensitive); null or absent keeps each tensor's
     * source dtype.
     *
     * @throws UserException naming the option and the value otherwise
     */
    public static SafetensorsDType dtype(String value) {
        if (value == null) {
            return null;
        }
        try {
            return SafetensorsDType.ofTorchName(value.trim());
        } catch (IllegalArgumentException e) {
            throw new UserException("--save-dtype must be float32, bfloat16 or float16, got '" + value + "'");
        }
    }

    /**
     * Bytes ({@code 2000000}) or a size with a unit ({@code 500MB}, {@code 5GB}, {@code 1GiB}).
     *
     * @throws UserException naming the option and the value otherwise
     */
    public static long maxShardBytes(String value) {
        try {
            return HfCheckpointWriter.parseSize(value);
        } catch (IllegalArgumentException e) {
            throw new UserException("--max-shard-size: " + e.getMessage());
        }
    }

    /** The save options of the two values (a null shard size is the 5 GB default). */
    public static NemotronV3ForCausalLM.SaveOptions options(String dtype, String maxShardSize) {
        NemotronV3ForCausalLM.SaveOptions options = NemotronV3ForCausalLM.SaveOptions.defaults().withDType(dtype(dtype));
        return maxShardSize == null ? options : options.withMaxShardBytes(maxShardBytes(maxShardSize));
    }
}
