package org.dl4jmtp.examples;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.io.HfCheckpointWriter;
import org.dl4jmtp.io.HfStateDictAdapter;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.buffer.DataType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code convert}: loads an HF checkpoint (single file or sharded, any supported dtype) strictly into the model and
 * writes it again, MTP tensors included, in the source dtypes or {@code --save-dtype}, sharded above
 * {@code --max-shard-size}.
 */
@Command(name = "convert", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Load an HF checkpoint and write it again (all tensors, MTP included): change its dtype"
                + " (--save-dtype) or its sharding (--max-shard-size). Keys are written in their hub form.")
final class ConvertCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR",
            description = "Checkpoint directory (config.json + model.safetensors or a sharded index).")
    Path checkpoint;

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "Output directory (created if missing; must not be the --checkpoint directory). Weight"
                    + " files of an earlier save there that the new layout does not use are removed.")
    Path out;

    @Option(names = "--save-dtype", paramLabel = "DTYPE",
            description = "float32, bfloat16 or float16 for every tensor (default: the dtype each tensor has in the"
                    + " checkpoint). bfloat16/float16 round to nearest, ties to even.")
    String saveDType;

    @Option(names = "--max-shard-size", paramLabel = "SIZE", defaultValue = "5GB",
            description = "Largest shard: bytes or a size with a unit (500MB, 5GB, 1GiB; default: ${DEFAULT-VALUE})."
                    + " Above it the checkpoint is written as model-0000i-of-0000N.safetensors +"
                    + " model.safetensors.index.json.")
    String maxShardSize;

    @Override
    public Integer call() throws Exception {
        NemotronV3ForCausalLM.SaveOptions options = SaveSettings.options(saveDType, maxShardSize);
        NemotronV3Config config = CheckpointSupport.readConfig(checkpoint);
        Path in = checkpoint.toAbsolutePath().normalize();
        Path target = out.toAbsolutePath().normalize();
        if (in.equals(target) || (Files.exists(target) && Files.isSameFile(in, target))) {
            throw new UserException("--out must not be the --checkpoint directory (" + checkpoint + ")");
        }
        if (Files.exists(target) && !Files.isDirectory(target)) {
            throw new UserException("--out must be a directory, but " + out + " is a file");
        }
        MtpConfig mtp = CheckpointSupport.mtpConfig(config, new MtpOptions(), null, null);
        PrintWriter err = spec.commandLine().getErr();
        NemotronV3ForCausalLM model = CheckpointSupport.load(checkpoint, config, mtp, DataType.FLOAT, false, err);
        HfCheckpointWriter.Result result = model.save(target, true, options);
        for (Path removed : result.removed()) {
            err.println("note: removed " + removed + " (a weight file of an earlier save that the new layout does"
                    + " not use)");
        }
        err.flush();
        PrintWriter o = spec.commandLine().getOut();
        o.printf(Locale.ROOT, "wrote %s: %d tensors in %d file(s)%s, %s%n", target,
                HfStateDictAdapter.parameters(model.graph()).size(),
                result.files().size(), result.index() != null ? " + " + result.index().getFileName() : "",
                options.dtype() == null ? "source dtypes" : options.dtype().name());
        o.flush();
        return 0;
    }
}
