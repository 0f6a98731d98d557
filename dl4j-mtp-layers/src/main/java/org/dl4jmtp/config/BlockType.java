package org.dl4jmtp.config;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * The mixer type of one NemotronV3 (Nemotron-H) block, in the backbone or in an MTP depth.
 *
 * <p>Each type has a pattern symbol (as used in {@code hybrid_override_pattern} /
 * {@code mtp_hybrid_override_pattern}) and a name (as used in {@code layers_block_type} /
 * {@code mtp_layers_block_type}). Two naming schemes exist in HF configs; {@link #fromHfName(String)}
 * accepts both, {@link #hfName()} returns the older one (also used by NeMo Automodel).
 */
public enum BlockType {
    /** Mamba2 mixer, symbol {@code M}, names {@code mamba} / {@code linear_attention}. */
    MAMBA('M', "mamba", "linear_attention"),
    /** Causal GQA self-attention without positional encoding, symbol {@code *}, names {@code attention} / {@code full_attention}. */
    ATTENTION('*', "attention", "full_attention"),
    /** Dense non-gated relu² MLP, symbol {@code -}, name {@code mlp}. */
    MLP('-', "mlp", "mlp"),
    /** Mixture of experts (optionally LatentMoE), symbol {@code E}, name {@code moe}. */
    MOE('E', "moe", "moe");

    /** The valid symbols, sorted by character code and formatted like Python's {@code sorted(...)}: {@code ['*', '-', 'E', 'M']}. */
    public static final String VALID_SYMBOLS = Arrays.stream(values())
            .map(BlockType::symbol)
            .sorted()
            .map(c -> "'" + c + "'")
            .collect(Collectors.joining(", ", "[", "]"));

    /** Every accepted name of both naming schemes, for error messages. */
    public static final String VALID_NAMES = Arrays.stream(values())
            .flatMap(t -> Stream.of(t.hfName, t.newHfName))
            .distinct()
            .map(n -> "'" + n + "'")
            .collect(Collectors.joining(", ", "[", "]"));

    private final char symbol;
    private final String hfName;
    private final String newHfName;

    BlockType(char symbol, String hfName, String newHfName) {
        this.symbol = symbol;
        this.hfName = hfName;
        this.newHfName = newHfName;
    }

    /** @return the pattern symbol: {@code 'M'}, {@code '*'}, {@code '-'} or {@code 'E'} */
    public char symbol() {
        return symbol;
    }

    /** @return the name in the older scheme: {@code mamba}, {@code attention}, {@code mlp} or {@code moe} */
    public String hfName() {
        return hfName;
    }

    /** @return the name in the newest HF scheme: {@code linear_attention}, {@code full_attention}, {@code mlp} or {@code moe} */
    public String newHfName() {
        return newHfName;
    }

    /**
     * @param c a pattern symbol
     * @return the block type of that symbol
     * @throws IllegalArgumentException naming the symbol and the valid set if {@code c} is unknown
     */
    public static BlockType fromSymbol(char c) {
        for (BlockType t : values()) {
            if (t.symbol == c) {
                return t;
            }
        }
        throw new IllegalArgumentException("Unknown layer symbol '" + c + "'; valid symbols: " + VALID_SYMBOLS);
    }

    /**
     * Maps a {@code layers_block_type} entry to a block type, accepting both naming schemes
     * ({@code mamba|linear_attention}, {@code attention|full_attention}, {@code mlp}, {@code moe}).
     * Matching is exact apart from surrounding whitespace and case.
     *
     * @throws IllegalArgumentException naming the value and the accepted names if it is unknown or null
     */
    public static BlockType fromHfName(String name) {
        if (name != null) {
            String n = name.trim().toLowerCase(Locale.ROOT);
            for (BlockType t : values()) {
                if (t.hfName.equals(n) || t.newHfName.equals(n)) {
                    return t;
                }
            }
        }
        throw new IllegalArgumentException("Unknown layer block type " + (name == null ? "null" : "'" + name + "'")
                + "; accepted names: " + VALID_NAMES);
    }

    /** @return the pattern string of {@code types}, e.g. {@code "M*ME-M"}; {@code ""} for an empty list */
    public static String toPattern(List<BlockType> types) {
        StringBuilder sb = new StringBuilder(types.size());
        for (BlockType t : types) {
            sb.append(t.symbol);
        }
        return sb.toString();
    }
}
