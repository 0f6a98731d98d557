package org.dl4jmtp.examples.train;

import java.util.Map;

/**
 * Held-out metrics. Index 0 of the per-depth arrays is the main head, d the MTP depth d.
 *
 * @param lossPerToken         mean cross-entropy per valid target, nats (index 0: main loss)
 * @param accuracyVsLabels     teacher-forced top-1 accuracy against the true next tokens
 * @param accuracyVsMain       top-1 agreement of depth d at t with the main head's greedy prediction at t+d
 *                             (what a greedy speculative decoder verifies); index 0 is 1 by definition
 * @param simulatedAcceptLength 1 + Σ_k P(drafts 1..k all agree with the main head's greedy tokens): the expected
 *                             tokens per verification step of greedy self-speculative decoding with D drafts
 * @param expertLoad           per MoE layer, the fraction of routed (token, slot) pairs taken by each expert
 */
public record ValidationReport(double[] lossPerToken, double[] accuracyVsLabels, double[] accuracyVsMain,
                               double simulatedAcceptLength, Map<String, double[]> expertLoad, long tokens) {

    public double mainLoss() {
        return lossPerToken[0];
    }

    public double perplexity() {
        return Math.exp(lossPerToken[0]);
    }
}
