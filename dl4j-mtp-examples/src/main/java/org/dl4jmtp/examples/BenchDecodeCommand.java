package org.dl4jmtp.examples;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.data.ByteTokenizer;
import org.dl4jmtp.generate.DecodeBenchmark;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code bench-decode}: full recompute, cached greedy and speculative greedy decoding on the same checkpoint and
 * prompts; prints one JSON object with tokens/s of each mode, the speed-ups and the acceptance metrics.
 */
@Command(name = "bench-decode", mixinStandardHelpOptions = true,
        description = "Compare full-recompute, cached greedy and MTP speculative decoding (one JSON object).")
final class BenchDecodeCommand implements Callable<Integer> {

    /** Default prompts (byte tokenizer), in the style of the Jargon File. */
    private static final List<String> DEFAULT_PROMPTS = List.of("hacker: n. ", "The Jargon File ", "kludge: ",
            "In the old days, ");

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR", description = "HF checkpoint directory.")
    Path checkpoint;

    @Option(names = "--prompt", paramLabel = "TEXT", description = "A prompt (byte tokenizer); repeatable.")
    List<String> prompts = new ArrayList<>();

    @Option(names = "--max-new-tokens", defaultValue = "64", description = "New tokens per prompt (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--speculative", defaultValue = "2", paramLabel = "K",
            description = "Drafts per verification step (default: ${DEFAULT-VALUE}).")
    int speculative;

    @Mixin
    MtpOptions mtpOptions = new MtpOptions();

    @Mixin
    RuntimeOptions runtime = new RuntimeOptions();

    @Option(names = "--dtype", paramLabel = "float|double", defaultValue = "float")
    Precision dtype;

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        runtime.apply(cl);
        if (speculative < 1 || maxNewTokens < 1) {
            throw new ParameterException(cl, "--speculative and --max-new-tokens must be >= 1");
        }
        NemotronV3Config config = CheckpointSupport.readConfig(checkpoint);
        MtpConfig mtp = CheckpointSupport.mtpConfig(config, mtpOptions, null, null);
        if (!mtp.enabled()) {
            throw new UserException("bench-decode needs MTP depths, but the checkpoint has none (--mtp-depths)");
        }
        if (config.getVocabSize() < ByteTokenizer.VOCAB_SIZE) {
            throw new UserException("bench-decode encodes its prompts as bytes; vocab_size " + config.getVocabSize() + " < 256");
        }
        runtime.applyDecodingDefault(config, mtp);
        NemotronV3ForCausalLM model = CheckpointSupport.load(checkpoint, config, mtp, dtype.dataType(),
                mtpOptions.allowMissingMtp, cl.getErr());
        ByteTokenizer bytes = new ByteTokenizer();
        List<int[]> encoded = new ArrayList<>();
        for (String p : prompts.isEmpty() ? DEFAULT_PROMPTS : prompts) {
            encoded.add(bytes.encode(p));
        }
        var result = DecodeBenchmark.run(model, encoded, maxNewTokens, speculative);
        cl.getOut().println(Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(result.toJsonMap()));
        cl.getOut().flush();
        return 0;
    }
}
