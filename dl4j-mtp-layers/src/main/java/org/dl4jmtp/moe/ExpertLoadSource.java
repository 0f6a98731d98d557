package org.dl4jmtp.moe;

import java.util.Map;

/**
 * A layer runtime that counts the tokens its MoE blocks route to each expert (the top-k choices of every forward
 * pass), for load balancing ({@link ExpertBiasBalancing}) and the validation expert load. Counting costs nothing
 * extra on the explicit runtime (the routing is on the host already); the SameDiff runtime routes the same inputs
 * again with {@link MoeRouting}.
 */
public interface ExpertLoadSource {

    /**
     * The tokens routed to each expert by every forward pass since the previous call, then forgets them.
     *
     * @return block key prefix within the layer ({@code ""} for a block layer, {@code "{sub}."} for a sublayer of a
     * weight-tied MTP depth, its counts summed over the depth's iterations) → [E] counts; empty when nothing ran
     */
    Map<String, long[]> drainExpertCounts();
}
