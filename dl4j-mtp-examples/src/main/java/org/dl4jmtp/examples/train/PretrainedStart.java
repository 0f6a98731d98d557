package org.dl4jmtp.examples.train;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.examples.UserException;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.io.SafetensorsCheckpoint;
import org.dl4jmtp.io.SafetensorsDType;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;

/**
 * {@code train --init-from DIR}: the run starts from an HF checkpoint (config.json + safetensors) instead of a fresh
 * initialisation. Every backbone, embedding and head tensor is loaded strictly; the {@code mtp.*} tensors too when the
 * checkpoint has any (the MTP options must then describe exactly those depths), else the MTP depths keep the
 * reference initialisation of the freshly built graph, with a note.
 */
final class PretrainedStart {

    private static final String MTP_PREFIX = "mtp.";

    private PretrainedStart() {
    }

    /**
     * Loads {@code dir} into {@code graph} (built for the checkpoint's config and {@code mtp}).
     *
     * @return each tensor's dtype in the checkpoint, so that the HF export writes untouched tensors bit-identically
     * @throws UserException naming every missing, unexpected or misshaped tensor
     */
    static Map<String, SafetensorsDType> load(ComputationGraph graph, Path dir, MtpConfig mtp, PrintStream notes)
            throws IOException {
        try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(dir)) {
            boolean hasMtp = checkpoint.keys().stream().anyMatch(k -> k.startsWith(MTP_PREFIX));
            try {
                HfStateDictAdapter.load(graph, checkpoint, true);
            } catch (IllegalArgumentException e) {
                throw new UserException("--init-from " + dir + ": " + e.getMessage() + (hasMtp
                        ? "\n  (the checkpoint's mtp.* tensors must match --mtp-depths, --mtp-repeated and the MTP"
                        + " pattern: " + mtp.getNumLayers() + " depth(s)" + (mtp.isUseRepeatedLayer() ? " repeated" : "")
                        + ", pattern " + mtp.getLayerPattern() + ")" : ""), e);
            }
            if (!hasMtp && mtp.enabled()) {
                notes.println("note: " + dir + " holds no mtp.* weights: the " + mtp.numPhysicalDepths()
                        + " MTP depth(s) start from the reference initialisation");
            }
            return HfStateDictAdapter.sourceDTypes(checkpoint);
        }
    }

    /** The source dtypes of the checkpoint a resumed run started from (empty, with a note, if it is gone). */
    static Map<String, SafetensorsDType> sourceDTypes(Path dir, PrintStream log) throws IOException {
        if (!java.nio.file.Files.isDirectory(dir)) {
            log.println("note: " + dir + " (--init-from of this run) is gone: the HF export writes float32 tensors");
            return Map.of();
        }
        try (SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(dir)) {
            return HfStateDictAdapter.sourceDTypes(checkpoint);
        }
    }
}
