package org.dl4jmtp.examples.ui;

import org.deeplearning4j.core.storage.Persistable;
import org.deeplearning4j.core.storage.StatsStorage;
import org.deeplearning4j.ui.model.stats.StatsListener;
import org.deeplearning4j.ui.model.stats.api.StatsReport;
import org.deeplearning4j.ui.model.storage.FileStatsStorage;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.examples.data.Corpus;
import org.dl4jmtp.examples.train.CorpusTrainingData;
import org.dl4jmtp.examples.train.TrainOptions;
import org.dl4jmtp.examples.train.Trainer;
import org.dl4jmtp.ui.MtpStatsRecord;
import org.dl4jmtp.ui.MtpStatsRecorder;
import org.dl4jmtp.ui.StatsRewind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A resumed run's UI history: rewinding the stats file of a 6-step run to step 4 leaves exactly the records that a
 * 4-step run writes (DL4J's per-iteration reports and the MTP step and validation records), so the resumed steps 5 and
 * 6 appear once.
 */
class StatsRewindTest {

    private static final PrintStream QUIET = new PrintStream(new ByteArrayOutputStream());

    @Test
    void rewindingToAStepKeepsWhatARunOfThatLengthWrote(@TempDir Path dir) throws Exception {
        Path six = train(dir.resolve("six"), 6);
        Path four = train(dir.resolve("four"), 4);
        List<String> expected = steps(four);
        assertFalse(expected.isEmpty());
        assertFalse(expected.equals(steps(six)), "the longer run has more records");

        ByteArrayOutputStream log = new ByteArrayOutputStream();
        int dropped = StatsRewind.keepThroughStep(six, 4, new PrintStream(log, true));
        assertEquals(expected, steps(six));
        assertTrue(dropped > 0 && log.toString().contains("dropped " + dropped + " record(s) past step 4"), log.toString());
        assertEquals(0, StatsRewind.keepThroughStep(six, 4, QUIET), "nothing left to drop");
    }

    @Test
    void anUnreadableStatsFileIsSetAsideNotDeleted(@TempDir Path dir) throws Exception {
        Path stats = Files.write(dir.resolve("stats.dl4j"), "not a MapDB file at all".getBytes());
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        StatsRewind.keepThroughStep(stats, 3, new PrintStream(log, true));
        assertFalse(Files.exists(stats));
        assertEquals("not a MapDB file at all", Files.readString(dir.resolve("stats.dl4j.unreadable")));
        assertTrue(log.toString().contains(stats + " cannot be read as a DL4J stats file"), log.toString());
    }

    /** Trains the micro model with the UI's listeners writing to a stats file; returns the file. */
    private static Path train(Path runDir, int steps) throws Exception {
        NemotronV3Config config = NemotronV3Config.fromJsonString("{\"model_type\": \"nemotron_h\", \"vocab_size\": 256,"
                + "\"hidden_size\": 16, \"hybrid_override_pattern\": \"*\", \"num_attention_heads\": 2,"
                + "\"num_key_value_heads\": 1, \"head_dim\": 8, \"intermediate_size\": 32,"
                + "\"num_nextn_predict_layers\": 1, \"mtp_hybrid_override_pattern\": \"*\"}");
        TrainOptions options = new TrainOptions(steps, 2, 16, 1e-2, 1, 0.1, 1.0, 7, 2, 1, 100, 1, "FLOAT");
        Path stats = Files.createDirectories(runDir).resolve("stats.dl4j");
        StatsStorage storage = new FileStatsStorage(stats.toFile());
        try {
            StatsListener listener = new StatsListener(storage, 1);
            Trainer trainer = new Trainer(runDir, QUIET);
            trainer.addListener(listener).addObserver(new MtpUiObserver(MtpStatsRecorder.forListener(storage, listener),
                    () -> "micro"));
            trainer.train(config, MtpConfig.fromHf(config), options,
                    new CorpusTrainingData(Corpus.synthetic(2, 2, 2000), new ByteTokenizer(), 0.2, options));
        } finally {
            storage.close();
        }
        return stats;
    }

    /** Every update record as "type:step", in storage order (session ids differ between runs). */
    private static List<String> steps(Path stats) throws Exception {
        List<String> out = new ArrayList<>();
        StatsStorage storage = new FileStatsStorage(stats.toFile());
        try {
            for (String session : storage.listSessionIDs()) {
                for (String type : storage.listTypeIDsForSession(session)) {
                    for (String worker : storage.listWorkerIDsForSessionAndType(session, type)) {
                        for (Persistable p : storage.getAllUpdatesAfter(session, type, worker, Long.MIN_VALUE)) {
                            out.add(p instanceof MtpStatsRecord r ? "mtp-" + r.kind() + ":" + r.step()
                                    : p instanceof StatsReport r ? "dl4j:" + r.getIterationCount()
                                    : p.getClass().getSimpleName());
                        }
                    }
                }
            }
        } finally {
            storage.close();
        }
        return out;
    }
}
