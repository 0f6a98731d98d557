package org.dl4jmtp.examples.train;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.MtpLossNormalization;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.UserException;
import picocli.CommandLine.Option;

import java.util.Locale;

/**
 * The options of a training run that {@code train} and the Spark trainer share (a picocli mixin): the MTP settings,
 * the optimizer schedule, validation and checkpointing, document isolation and the dtypes. Each command adds its own
 * (data location, replicas or Spark workers, pretrained start).
 */
public final class TrainingRunOptions {

    @Option(names = "--mtp-depths", description = "MTP depths D (default: the config's num_nextn_predict_layers).")
    Integer mtpDepths;
    @Option(names = "--mtp-repeated", description = "One weight-tied MTP depth applied D times.")
    boolean mtpRepeated;
    @Option(names = "--mtp-lambda", defaultValue = "0.1", description = "MTP loss weight λ (default: 0.1).")
    double mtpLambda;
    @Option(names = "--mtp-norm", defaultValue = "main",
            description = "MTP loss normalisation: main (NeMo Automodel, default) or depth (Megatron).")
    String mtpNorm;

    @Option(names = "--steps", defaultValue = "200") int steps;
    @Option(names = "--batch-size", defaultValue = "8") int batchSize;
    @Option(names = "--seq-len", defaultValue = "128") int seqLen;
    @Option(names = "--lr", defaultValue = "3e-3", description = "Peak learning rate (Adam).") double lr;
    @Option(names = "--warmup", defaultValue = "30", description = "Warm-up steps.") int warmup;
    @Option(names = "--min-lr-ratio", defaultValue = "0.1", description = "Final LR / peak LR (cosine).") double minLrRatio;
    @Option(names = "--clip", defaultValue = "1.0", description = "Per-layer gradient L2 clip (0 = off).") double clip;
    @Option(names = "--seed", defaultValue = "42") long seed;
    @Option(names = "--eval-every", defaultValue = "50") int evalEvery;
    @Option(names = "--eval-batches", defaultValue = "8") int evalBatches;
    @Option(names = "--checkpoint-every", defaultValue = "100") int checkpointEvery;
    @Option(names = "--keep-checkpoints", defaultValue = "3") int keepCheckpoints;
    @Option(names = "--validation-fraction", defaultValue = "0.05") double validationFraction;
    @Option(names = "--no-doc-isolation", description = "Let the documents packed into a window see each other in "
            + "attention, the Mamba2 conv and the SSM state (default: each sees only itself, as the reference's packed "
            + "training does; the loss keeps its targets inside the documents either way).")
    boolean noDocIsolation;
    @Option(names = "--dtype", defaultValue = "float", description = "float (default) or double.") String dtype;
    @Option(names = "--save-dtype", paramLabel = "DTYPE", defaultValue = "float32",
            description = "dtype of the final HF export in <out>/hf: float32 (default), bfloat16 or float16"
                    + " (training checkpoints stay float32).") String saveDType;

    /** The MTP settings for {@code model} (unvalidated); IllegalArgumentException for a bad value. */
    public MtpConfig mtpConfig(NemotronV3Config model) {
        MtpConfig mtp = MtpConfig.fromHf(model, mtpLambda, mtpDepths, mtpRepeated);
        mtp.setLossNormalization(MtpLossNormalization.parse(mtpNorm));
        return mtp;
    }

    /** The run's settings on {@code runtime}, checked, as one-line errors naming the option. */
    public TrainOptions trainOptions(String runtime) {
        String type = dtype.toUpperCase(Locale.ROOT);
        if (!type.equals("FLOAT") && !type.equals("DOUBLE")) {
            throw new UserException("--dtype must be float or double, got " + dtype);
        }
        if (!(validationFraction > 0 && validationFraction < 1)) {
            throw new UserException("--validation-fraction must lie in (0, 1), got " + validationFraction);
        }
        try {
            return new TrainOptions(steps, batchSize, seqLen, lr, warmup, minLrRatio, clip, seed, evalEvery,
                    evalBatches, checkpointEvery, keepCheckpoints, type, runtime)
                    .withDocumentIsolation(!noDocIsolation);
        } catch (IllegalArgumentException e) {
            throw new UserException(e.getMessage(), e);
        }
    }

    public double validationFraction() {
        return validationFraction;
    }

    /** A resumed run validates on the split it started with. */
    void validationFraction(double fraction) {
        this.validationFraction = fraction;
    }

    public String saveDType() {
        return saveDType;
    }
}
