package org.dl4jmtp.ui;

import org.deeplearning4j.core.storage.StatsStorageRouter;
import org.deeplearning4j.ui.model.stats.StatsListener;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * Writes a training run's MTP metrics into a DL4J {@code StatsStorage} ({@code InMemoryStatsStorage} or
 * {@code FileStatsStorage}) as {@link MtpStatsRecord}s, under the session of the run's {@link StatsListener}, so that the
 * stock pages and the MTP page show the same session and a stored run can be reopened.
 *
 * <p>Plain numbers only (this module does not know the trainer): per-head arrays have the main head at index 0 and MTP
 * depth d at index d. The first record also writes the session's static info (once: the storage lists a session's
 * workers through it).
 */
public final class MtpStatsRecorder {

    private final StatsStorageRouter storage;
    private final String sessionId;
    private boolean runInfoWritten;
    private long lastTimestamp;

    /** Records under {@code sessionId}; use the StatsListener's ({@link #forListener}) to share the stock pages' session. */
    public MtpStatsRecorder(StatsStorageRouter storage, String sessionId) {
        this.storage = Objects.requireNonNull(storage, "storage");
        this.sessionId = Objects.requireNonNull(sessionId, "sessionId");
    }

    /** Records under the session of {@code listener} (the pitfall: a session of its own would not line up). */
    public static MtpStatsRecorder forListener(StatsStorageRouter storage, StatsListener listener) {
        return new MtpStatsRecorder(storage, listener.getSessionID());
    }

    public String sessionId() {
        return sessionId;
    }

    /**
     * The run's static info, e.g. {@code "tiny preset, MTP D=2, λ=0.1"}. Written at most once; if it was not called, the
     * first step or validation writes it with an empty description.
     */
    public synchronized void recordRunInfo(String description, int mtpDepths) {
        if (!runInfoWritten) {
            storage.putStaticInfo(MtpStatsRecord.runInfo(sessionId, nextTimestamp(), description, mtpDepths));
            runInfoWritten = true;
        }
    }

    /**
     * One optimizer step.
     *
     * @param lossPerHead     training loss per head, nats per token: index 0 the main loss, d the loss of MTP depth d
     * @param totalLoss       the optimised loss (main + weighted MTP)
     * @param tokensPerSecond training throughput of this step
     */
    public synchronized void recordStep(long step, double learningRate, double totalLoss, double[] lossPerHead,
                                        double tokensPerSecond) {
        requireHeads(lossPerHead, "lossPerHead");
        recordRunInfo("", lossPerHead.length - 1);
        storage.putUpdate(MtpStatsRecord.step(sessionId, nextTimestamp(), step, learningRate, totalLoss, lossPerHead,
                tokensPerSecond));
    }

    /**
     * One validation.
     *
     * @param lossPerHead      validation loss per head (index 0 main), nats per token
     * @param accuracyVsLabels teacher-forced top-1 accuracy per head against the true tokens
     * @param accuracyVsMain   top-1 agreement of depth d with the main head's greedy token (index 0: 1)
     * @param acceptanceLength simulated acceptance length of greedy self-speculative decoding (tokens per step)
     * @param expertLoad       per MoE layer, tokens (or fractions) routed to each expert; stored as fractions
     */
    public synchronized void recordValidation(long step, double[] lossPerHead, double[] accuracyVsLabels,
                                              double[] accuracyVsMain, double acceptanceLength,
                                              Map<String, double[]> expertLoad) {
        requireHeads(lossPerHead, "lossPerHead");
        recordRunInfo("", lossPerHead.length - 1);
        Map<String, double[]> fractions = new LinkedHashMap<>();
        if (expertLoad != null) {
            expertLoad.forEach((layer, load) -> fractions.put(layer, fractions(load)));
        }
        storage.putUpdate(MtpStatsRecord.validation(sessionId, nextTimestamp(), step, lossPerHead,
                accuracyVsLabels != null ? accuracyVsLabels : new double[0],
                accuracyVsMain != null ? accuracyVsMain : new double[0], acceptanceLength, fractions));
    }

    /** Storages key updates by timestamp: two records in the same millisecond must not overwrite each other. */
    private long nextTimestamp() {
        lastTimestamp = Math.max(System.currentTimeMillis(), lastTimestamp + 1);
        return lastTimestamp;
    }

    static double[] fractions(double[] load) {
        double sum = 0;
        for (double v : load) {
            sum += v;
        }
        double[] out = load.clone();
        if (sum > 0 && Double.isFinite(sum)) {
            for (int i = 0; i < out.length; i++) {
                out[i] /= sum;
            }
        }
        return out;
    }

    private static void requireHeads(double[] lossPerHead, String name) {
        if (lossPerHead == null || lossPerHead.length == 0) {
            throw new IllegalArgumentException(name + " must hold at least the main head's loss (index 0)");
        }
    }
}
