package org.dl4jmtp.moe;

import java.util.LinkedHashMap;
import java.util.Map;

/** Routed-token counts per MoE block, accumulated over forward passes until drained ({@link ExpertLoadSource}). */
public final class ExpertCounts {

    private Map<String, long[]> counts = new LinkedHashMap<>();

    /** Adds the tokens {@code routing} sent to each expert under {@code key}; a null routing (no MoE) is ignored. */
    public synchronized void add(String key, MoeRouting routing) {
        if (routing == null) {
            return;
        }
        long[] c = counts.computeIfAbsent(key, k -> new long[routing.experts]);
        for (int e = 0; e < routing.experts; e++) {
            c[e] += routing.count(e);
        }
    }

    /** The counts so far, by key; afterwards empty. */
    public synchronized Map<String, long[]> drain() {
        Map<String, long[]> out = counts;
        counts = new LinkedHashMap<>();
        return out;
    }

    /** Adds {@code source} into {@code sums} key by key. */
    public static void addInto(Map<String, long[]> sums, String key, long[] source) {
        long[] sum = sums.computeIfAbsent(key, k -> new long[source.length]);
        if (sum.length != source.length) {
            throw new IllegalArgumentException("expert counts of " + key + " have " + source.length
                    + " experts, earlier ones " + sum.length);
        }
        for (int e = 0; e < source.length; e++) {
            sum[e] += source[e];
        }
    }
}
