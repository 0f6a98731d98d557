package org.dl4jmtp.config;

import java.util.Locale;

/**
 * How the per-depth MTP cross-entropy sums are normalised. Either way the MTP term is
 * {@code (λ/D)·Σ_d L_d}; only the denominator of {@code L_d} differs (docs/model.md, "Loss").
 */
public enum MtpLossNormalization {
    /**
     * NeMo Automodel (project default): every CE sum, main and each depth, is divided by N,
     * the number of non-ignored MAIN labels.
     */
    MAIN_LABEL_COUNT,
    /** Megatron: depth d is divided by its own count N_d of non-ignored rolled labels. */
    PER_DEPTH_COUNT;

    /**
     * Parses a user-facing name, case-insensitively: {@code main}, {@code am}, {@code automodel},
     * {@code main_label_count} → {@link #MAIN_LABEL_COUNT}; {@code depth}, {@code megatron}, {@code mg},
     * {@code per_depth}, {@code per_depth_count} → {@link #PER_DEPTH_COUNT}.
     *
     * @throws IllegalArgumentException naming the value and the accepted names otherwise
     */
    public static MtpLossNormalization parse(String name) {
        String n = name == null ? "" : name.trim().toLowerCase(Locale.ROOT).replace('-', '_');
        switch (n) {
            case "main":
            case "am":
            case "automodel":
            case "nemo_automodel":
            case "main_label_count":
                return MAIN_LABEL_COUNT;
            case "depth":
            case "megatron":
            case "mg":
            case "per_depth":
            case "per_depth_count":
                return PER_DEPTH_COUNT;
            default:
                throw new IllegalArgumentException("Unknown MTP loss normalisation '" + name
                        + "'; use 'main' (alias 'am': every depth / N main labels, NeMo Automodel) or 'depth'"
                        + " (alias 'megatron': depth d / its own count N_d)");
        }
    }
}
