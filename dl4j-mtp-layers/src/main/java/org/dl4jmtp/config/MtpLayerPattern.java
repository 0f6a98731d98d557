package org.dl4jmtp.config;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Parses layer pattern strings such as {@code "M*ME-M"} (backbone, {@code hybrid_override_pattern})
 * or {@code "*E"} (one MTP depth, {@code mtp_hybrid_override_pattern}) into block types.
 * Mirrors NeMo Automodel's {@code parse_mtp_layer_pattern}: {@code M}=Mamba2, {@code *}=attention,
 * {@code -}=dense MLP, {@code E}=MoE; anything else (including whitespace and Megatron's {@code /}
 * depth separators) is rejected.
 */
public final class MtpLayerPattern {

    private MtpLayerPattern() {
    }

    /**
     * Parses the sublayer pattern of one MTP depth.
     *
     * @return an unmodifiable list with one block type per symbol
     * @throws IllegalArgumentException "MTP layer pattern is empty" for null/empty input, or a message naming
     *                                  the unknown symbol, its position and the valid set {@code ['*', '-', 'E', 'M']}
     */
    public static List<BlockType> parse(String pattern) {
        return parse(pattern, "MTP layer pattern");
    }

    /**
     * Parses a backbone {@code hybrid_override_pattern}; same symbols and errors as {@link #parse(String)},
     * but the messages say {@code hybrid_override_pattern}.
     */
    public static List<BlockType> parseBackbone(String pattern) {
        return parse(pattern, "hybrid_override_pattern");
    }

    /**
     * Parses {@code pattern}; {@code what} names the pattern in error messages (e.g. the config field).
     */
    public static List<BlockType> parse(String pattern, String what) {
        if (pattern == null || pattern.isEmpty()) {
            throw new IllegalArgumentException(what + " is empty");
        }
        List<BlockType> types = new ArrayList<>(pattern.length());
        for (int i = 0; i < pattern.length(); i++) {
            char c = pattern.charAt(i);
            try {
                types.add(BlockType.fromSymbol(c));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("Unknown symbol '" + c + "' at position " + i + " in " + what
                        + " \"" + pattern + "\"; valid symbols: " + BlockType.VALID_SYMBOLS, e);
            }
        }
        return Collections.unmodifiableList(types);
    }
}
