package org.dl4jmtp.model;

import org.deeplearning4j.nn.conf.WorkspaceMode;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.graph.GraphNames;
import org.dl4jmtp.losses.MtpLossReport;
import org.dl4jmtp.losses.MtpLossRuntimeLayer;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A short float32 training run ({@code fit}, Adam, workspaces on) of a tiny model with all four block types and MTP
 * D = 2 on a repeated batch of learnable sequences (token ids following a fixed permutation cycle): the total, main
 * and per-depth losses must drop below half their initial values, and the process RSS must not grow by more than
 * {@link #MAX_RSS_GROWTH_BYTES} between step 10 and the last step. RSS is read from {@code /proc/self/status} after a
 * {@code System.gc()} has settled: without it the reading is dominated by G1 growing the committed Java heap
 * (measured: 130 MB → 2 GB over 20 steps while under 200 MB of it is live, back to ~130 MB after one full GC), which
 * is heap sizing, not a leak. ND4J runs single-threaded here (restored afterwards): these tiny ops are
 * several times faster that way on a busy 2-core machine.
 */
class TrainingSmokeTest {

    private static final int H = 16;
    private static final int V = 16;
    private static final int T = 12;
    private static final int MB = 4;
    private static final int STEPS = 20;
    /** Allowed VmRSS growth between step 10 and the last step. */
    private static final long MAX_RSS_GROWTH_BYTES = 100L << 20;

    static NemotronV3Config tinyConfig() {
        NemotronV3Config c = new NemotronV3Config();
        c.setVocabSize(V);
        c.setHiddenSize(H);
        c.hybridOverridePattern("M*-E");
        c.setNumAttentionHeads(2);
        c.setNumKeyValueHeads(1);
        c.setHeadDim(8);
        c.setMambaNumHeads(2);
        c.setMambaHeadDim(8);
        c.setSsmStateSize(8);
        c.setNGroups(1);
        c.setConvKernel(4);
        c.setChunkSize(8);
        c.setIntermediateSize(32);
        c.setNRoutedExperts(4);
        c.setNumExpertsPerTok(2);
        c.setMoeIntermediateSize(16);
        c.setMoeSharedExpertIntermediateSize(16);
        c.setRoutedScalingFactor(2.5);
        c.mtpHybridOverridePattern("*E");
        c.setNumNextnPredictLayers(2);
        c.validate();
        return c;
    }

    /** Row b: the cycle of a fixed permutation of 0..V-1 from offset 3b; labels[t] = ids[t+1] (pre-shifted). */
    private static MultiDataSet batch() {
        int[] cycle = {5, 11, 2, 14, 0, 9, 7, 3, 12, 1, 15, 6, 10, 4, 13, 8};
        float[][][] ids = new float[MB][1][T];
        float[][][] labels = new float[MB][1][T];
        for (int b = 0; b < MB; b++) {
            for (int t = 0; t < T; t++) {
                ids[b][0][t] = cycle[(3 * b + t) % V];
                labels[b][0][t] = cycle[(3 * b + t + 1) % V];
            }
        }
        labels[0][0][0] = -100;   // an ignored position, as a prompt mask would give
        return new MultiDataSet(Nd4j.create(ids), Nd4j.create(labels));
    }

    /**
     * VmRSS after a full GC, once it has settled: G1 returns the shrunk heap to the OS concurrently after the GC, and
     * ND4J's deallocator thread frees the off-heap buffers of collected arrays, so poll until two readings agree.
     */
    private static long rssAfterGc() throws IOException, InterruptedException {
        long previous = Long.MAX_VALUE;
        for (int i = 0; i < 20; i++) {
            System.gc();
            Thread.sleep(150);
            long rss = rssBytes();
            if (Math.abs(previous - rss) < (2L << 20)) {
                return rss;
            }
            previous = rss;
        }
        return previous;
    }

    private static long rssBytes() throws IOException {
        for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                String[] parts = line.trim().split("\\s+");
                return Long.parseLong(parts[1]) * 1024L;   // "VmRSS:  123456 kB"
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void adamStepsReduceTheLossWithFlatMemory() throws IOException, InterruptedException {
        int threads = Nd4j.getEnvironment().maxThreads();
        int masterThreads = Nd4j.getEnvironment().maxMasterThreads();
        Nd4j.getEnvironment().setMaxThreads(1);
        Nd4j.getEnvironment().setMaxMasterThreads(1);
        try {
            train();
        } finally {
            Nd4j.getEnvironment().setMaxThreads(threads);
            Nd4j.getEnvironment().setMaxMasterThreads(masterThreads);
        }
    }

    private void train() throws IOException, InterruptedException {
        NemotronV3Config cfg = tinyConfig();
        assertTrue(cfg.getLayerTypes().containsAll(java.util.List.of(BlockType.values())), "all four block types");
        MtpConfig mtp = MtpConfig.builder().numLayers(2).layerPattern("*E").lossScalingFactor(0.3).build();
        ComputationGraph graph = NemotronV3ForCausalLM.graphBuilder(cfg, mtp)
                .dataType(DataType.FLOAT).seed(2024).updater(new Adam(1e-2)).build();
        assertEquals(WorkspaceMode.ENABLED, graph.getConfiguration().getTrainingWorkspaceMode());
        assertEquals(DataType.FLOAT, graph.params().dataType());

        MultiDataSet batch = batch();
        double initial = graph.score(batch, false);
        assertTrue(Double.isFinite(initial));
        MtpLossReport initialReport = ((MtpLossRuntimeLayer) graph.getLayer(GraphNames.LM_HEAD)).lastReport();
        assertNotNull(initialReport);
        assertEquals(initial, initialReport.totalLoss(), 1e-4 * initial);
        long rssAfter10 = -1;
        long start = System.nanoTime();
        double[] scores = new double[STEPS];
        for (int step = 1; step <= STEPS; step++) {
            graph.fit(batch);
            scores[step - 1] = graph.score();   // the loss this step's gradient was computed at
            assertTrue(Double.isFinite(scores[step - 1]), "finite score at step " + step);
            if (step == 10) {
                rssAfter10 = rssAfterGc();
            }
        }
        long rssEnd = rssAfterGc();
        double seconds = (System.nanoTime() - start) / 1e9;
        double last = graph.score(batch, false);
        MtpLossReport report = ((MtpLossRuntimeLayer) graph.getLayer(GraphNames.LM_HEAD)).lastReport();
        assertNotNull(report);
        System.out.printf("TrainingSmokeTest: loss %.4f -> %.4f (main %.4f, depths %.4f / %.4f) in %d steps, %.1f s;"
                        + " RSS after step 10 %d MB, after step %d %d MB; scores %s%n", initial, last, report.mainLoss(),
                report.depthLosses()[1], report.depthLosses()[2], STEPS, seconds, rssAfter10 >> 20, STEPS, rssEnd >> 20,
                java.util.Arrays.toString(java.util.Arrays.stream(scores).map(v -> Math.round(v * 1000) / 1000.0).toArray()));
        assertEquals(initial, scores[0], 1e-4 * initial, "the first fit starts from the initial loss");

        assertTrue(last < 0.5 * initial, "loss " + initial + " -> " + last + " is not below 50% of the initial");
        for (int d = 0; d <= 2; d++) {
            assertTrue(report.depthLosses()[d] < 0.5 * initialReport.depthLosses()[d], "depth " + d + " loss "
                    + initialReport.depthLosses()[d] + " -> " + report.depthLosses()[d] + " (0 = main head)");
        }
        long growth = rssEnd - rssAfter10;
        assertTrue(growth < MAX_RSS_GROWTH_BYTES, "RSS grew by " + (growth >> 20) + " MB between step 10 and step "
                + STEPS + " (bound " + (MAX_RSS_GROWTH_BYTES >> 20) + " MB)");
    }
}
