package org.dl4jmtp.examples.data;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * A HuggingFace {@code tokenizer.json} through DJL's Rust tokenizers (bundled native library, works offline). The
 * vocabulary size is one past the largest id of the model vocabulary and the added tokens.
 */
public final class HuggingFaceJsonTokenizer implements Tokenizer, AutoCloseable {

    private final HuggingFaceTokenizer tokenizer;
    private final int vocabSize;
    private final Path file;

    public HuggingFaceJsonTokenizer(Path tokenizerJson) throws IOException {
        this.file = tokenizerJson;
        this.tokenizer = HuggingFaceTokenizer.newInstance(tokenizerJson, Map.of("addSpecialTokens", "false"));
        this.vocabSize = vocabularySize(new ObjectMapper().readTree(tokenizerJson.toFile()));
    }

    private static int vocabularySize(JsonNode json) {
        int max = -1;
        JsonNode vocab = json.path("model").path("vocab");
        if (vocab.isObject()) {
            for (JsonNode id : (Iterable<JsonNode>) vocab::elements) {
                max = Math.max(max, id.asInt());
            }
        } else if (vocab.isArray()) {
            max = vocab.size() - 1;   // Unigram models: [[piece, score], ...]
        }
        for (JsonNode added : json.path("added_tokens")) {
            max = Math.max(max, added.path("id").asInt());
        }
        if (max < 0) {
            throw new IllegalArgumentException("No vocabulary found in " + "tokenizer.json");
        }
        return max + 1;
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public int[] encode(String text) {
        long[] ids = tokenizer.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    @Override
    public String decode(int[] ids) {
        long[] longs = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            longs[i] = ids[i];
        }
        return tokenizer.decode(longs);
    }

    @Override
    public String name() {
        return "hf:" + file.getFileName();
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
