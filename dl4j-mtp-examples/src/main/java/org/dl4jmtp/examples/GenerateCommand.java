package org.dl4jmtp.examples;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.generate.CachedGreedyDecoder;
import org.dl4jmtp.generate.CachedNemotronV3;
import org.dl4jmtp.generate.FullRecomputeDecoder;
import org.dl4jmtp.generate.GenerationResult;
import org.dl4jmtp.generate.Sampler;
import org.dl4jmtp.generate.SpeculativeDecoder;
import org.dl4jmtp.generate.TokenDecoder;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;
import picocli.CommandLine;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * {@code generate}: parses the options, decodes with the library's decoders and prints JSON. Greedy decoding runs on
 * the cached path ({@link CachedGreedyDecoder}, or {@link SpeculativeDecoder}); sampling, {@code --show-drafts},
 * {@code --no-cache} and {@code --runtime samediff} recompute the full forward at every step
 * ({@link FullRecomputeDecoder}, through the graph's SameDiff layers with {@code --runtime samediff}).
 */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Greedy or sampled decoding (main head, batch 1; greedy runs cached on the explicit runtime); prints"
                + " {\"prompt\": [...], \"generated\": [...], \"drafts\": [[...], ...]} (drafts with --show-drafts).")
final class GenerateCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--checkpoint", required = true, paramLabel = "DIR",
            description = "Checkpoint directory (config.json + model.safetensors or a sharded index).")
    java.nio.file.Path checkpoint;

    @CommandLine.ArgGroup(exclusive = true, multiplicity = "1")
    Prompt prompt;

    /** The prompt as token ids or as text. */
    static final class Prompt {
        /** Strings, parsed by {@link #promptIds}: an empty list or a non-number is then one clear line. */
        @Option(names = "--prompt-ids", split = ",", paramLabel = "ID",
                description = "Prompt token ids, comma-separated (e.g. 80,33,58).")
        List<String> ids;

        @Option(names = "--prompt", paramLabel = "TEXT",
                description = "Prompt text, encoded with --tokenizer; the output then also holds the generated text.")
        String text;
    }

    @Option(names = "--tokenizer", paramLabel = "byte|tokenizer.json", defaultValue = "byte",
            description = "Tokenizer of --prompt: byte (UTF-8 bytes, the train command's default) or a HuggingFace"
                    + " tokenizer.json (default: ${DEFAULT-VALUE}).")
    String tokenizer;

    @Option(names = "--temperature", defaultValue = "0", paramLabel = "T",
            description = "0 = greedy (default); > 0 samples from softmax(logits / T).")
    double temperature;

    @Option(names = "--top-k", defaultValue = "0", paramLabel = "K",
            description = "When sampling, only the K most likely tokens (0 = all).")
    int topK;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the sampler (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--speculative", paramLabel = "K", defaultValue = "0",
            description = "Greedy MTP self-speculative decoding with K drafts per verification step (output identical to"
                    + " greedy); prints vLLM-style acceptance metrics.")
    int speculative;

    @Option(names = "--no-cache",
            description = "Recompute the full forward at every step (the reference; also used by --show-drafts and"
                    + " sampling). Default for greedy decoding: the cached path (Mamba/conv/SSM states, KV cache).")
    boolean noCache;

    @Option(names = "--max-new-tokens", required = true, paramLabel = "N", description = "Tokens to generate (>= 1).")
    int maxNewTokens;

    @Option(names = "--show-drafts",
            description = "At every step also the argmax draft of every MTP depth (for the tokens after the next one).")
    boolean showDrafts;

    @Option(names = "--stop-at-eos",
            description = "Stop after generating one of the config's eos_token_id (default: always N tokens).")
    boolean stopAtEos;

    @Mixin
    MtpOptions mtpOptions = new MtpOptions();

    @Mixin
    RuntimeOptions runtime = new RuntimeOptions();

    @Mixin
    LayerRuntimeOption layerRuntime = new LayerRuntimeOption();

    @Option(names = "--dtype", paramLabel = "float|double", defaultValue = "float",
            description = "Precision: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    Precision dtype;

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        runtime.apply(cl);
        if (maxNewTokens < 1) {
            throw new UserException("--max-new-tokens must be >= 1, got " + maxNewTokens);
        }
        Sampler sampler;
        try {
            sampler = Sampler.of(temperature, topK, seed);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(cl, "--temperature must be finite and >= 0, --top-k >= 0");
        }
        if (showDrafts && temperature > 0) {
            throw new ParameterException(cl, "--show-drafts shows greedy drafts: use it without --temperature");
        }
        org.dl4jmtp.examples.data.Tokenizer textTokenizer = prompt.text != null ? tokenizer() : null;
        List<Long> promptIds = new ArrayList<>();
        if (prompt.text != null) {
            for (int id : textTokenizer.encode(prompt.text)) {
                promptIds.add((long) id);
            }
        } else {
            promptIds.addAll(promptIds(prompt.ids));
        }
        String promptOption = prompt.text != null ? "--prompt" : "--prompt-ids";
        if (promptIds.isEmpty()) {
            throw new UserException(promptOption + " is empty: the prompt needs at least one token");
        }
        if (mtpOptions.depths != null && mtpOptions.depths < 0) {
            throw new ParameterException(cl, "--mtp-depths must be >= 0, got " + mtpOptions.depths);
        }
        NemotronV3Config config = CheckpointSupport.readConfig(checkpoint);
        int vocab = config.getVocabSize();
        for (int i = 0; i < promptIds.size(); i++) {
            long id = promptIds.get(i);
            if (id < 0 || id >= vocab) {
                throw new UserException(promptOption + ": token id " + id + " (position " + i + ") is out of range"
                        + " [0, " + vocab + ") (vocab_size of " + checkpoint.resolve(CheckpointSupport.CONFIG_FILE)
                        + ")");
            }
        }
        MtpConfig mtp = CheckpointSupport.mtpConfig(config, mtpOptions, null, null);
        runtime.applyDecodingDefault(config, mtp);
        int depths = mtp.enabled() ? mtp.getNumLayers() : 0;
        if (showDrafts && depths == 0) {
            throw new UserException("--show-drafts needs MTP depths, but MTP is off: "
                    + (mtpOptions.depths != null ? "--mtp-depths is 0"
                    : "num_nextn_predict_layers of " + checkpoint.resolve(CheckpointSupport.CONFIG_FILE) + " is "
                    + config.getNumNextnPredictLayers() + " (set --mtp-depths, with --allow-missing-mtp for a"
                    + " checkpoint without MTP weights)"));
        }
        NemotronV3ForCausalLM model = CheckpointSupport.load(checkpoint, config, mtp, dtype.dataType(),
                mtpOptions.allowMissingMtp, layerRuntime.get(cl), cl.getErr());

        boolean samediff = layerRuntime.get(cl) == LayerRuntime.SAMEDIFF;   // no cached path: full recompute
        boolean cachedPath = !noCache && !showDrafts && temperature == 0 && !samediff;
        if (speculative < 0 || (speculative > 0 && !cachedPath)) {
            throw new ParameterException(cl, "--speculative K needs K >= 1 and greedy decoding with the cache"
                    + " (not with --no-cache, --show-drafts, --temperature or --runtime samediff)");
        }
        if (speculative > 0 && depths == 0) {
            throw new UserException("--speculative drafts with the MTP depths, but MTP is off for this checkpoint");
        }
        int[] ids = promptIds.stream().mapToInt(Long::intValue).toArray();
        Set<Integer> stops = stopAtEos ? model.eosTokenIds() : Set.of();
        if (cachedPath) {
            CachedNemotronV3 cached = CachedNemotronV3.of(model);
            TokenDecoder decoder = speculative > 0 ? new SpeculativeDecoder(cached, speculative)
                    : new CachedGreedyDecoder(cached);
            print(cl, promptIds, decoder.name(), decoder.generate(ids, maxNewTokens, stops), textTokenizer);
        } else {
            FullRecomputeDecoder full = new FullRecomputeDecoder(model, sampler);
            print(cl, promptIds, null, showDrafts ? full.generateWithDrafts(ids, maxNewTokens, stops)
                    : full.generate(ids, maxNewTokens, stops), textTokenizer);
        }
        return 0;
    }

    /**
     * The JSON line of one generation. Full recomputation ({@code mode} null) prints neither mode nor speed, as it
     * did before the cached path existed.
     */
    private void print(CommandLine cl, List<Long> promptIds, String mode, GenerationResult result,
                       org.dl4jmtp.examples.data.Tokenizer textTokenizer) {
        ObjectNode out = Json.object();
        if (mode != null) {
            out.put("mode", mode);
        }
        ArrayNode promptArray = out.putArray("prompt");
        promptIds.forEach(promptArray::add);
        ArrayNode gen = out.putArray("generated");
        for (int token : result.tokens()) {
            gen.add(token);
        }
        if (mode != null) {
            out.put("tokens_per_s", result.tokensPerSecond());
        }
        if (result.stats() != null) {
            out.set("speculative", Json.MAPPER.valueToTree(result.stats().toJsonMap()));
        }
        if (showDrafts) {
            ArrayNode all = out.putArray("drafts");
            for (int[] stepDrafts : result.drafts()) {
                ArrayNode a = all.addArray();
                for (int draft : stepDrafts) {
                    a.add(draft);
                }
            }
        }
        if (textTokenizer != null) {
            out.put("prompt_text", prompt.text);
            out.put("generated_text", textTokenizer.decode(result.tokens()));
        }
        cl.getOut().println(Json.write(out));
        cl.getOut().flush();
    }

    /** The ids of {@code --prompt-ids}; none when it was given only empty strings. */
    private static List<Long> promptIds(List<String> values) {
        List<Long> ids = new ArrayList<>();
        if (values.stream().allMatch(String::isBlank)) {
            return ids;
        }
        for (int i = 0; i < values.size(); i++) {
            try {
                ids.add(Long.parseLong(values.get(i).strip()));
            } catch (NumberFormatException e) {
                throw new UserException("--prompt-ids: '" + values.get(i) + "' (position " + i + ") is not a token id");
            }
        }
        return ids;
    }

    private org.dl4jmtp.examples.data.Tokenizer tokenizer() throws java.io.IOException {
        return "byte".equals(tokenizer) ? new org.dl4jmtp.examples.data.ByteTokenizer()
                : new org.dl4jmtp.examples.data.HuggingFaceJsonTokenizer(java.nio.file.Path.of(tokenizer));
    }
}
