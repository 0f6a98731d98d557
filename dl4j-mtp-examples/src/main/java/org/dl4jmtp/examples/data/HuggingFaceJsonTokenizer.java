package org.dl4jmtp.examples.data;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.MissingNode;

import java.io.IOException;
import java.nio.file.Files;
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

    /**
     * @throws IllegalArgumentException naming the file if it is missing, is not JSON (with the line and column of the
     *                                  syntax error), holds no vocabulary or DJL cannot load it
     */
    public HuggingFaceJsonTokenizer(Path tokenizerJson) throws IOException {
        this.file = tokenizerJson;
        // Jackson first: its syntax errors give the line and column, and a file without a vocabulary is caught
        // before the native library is involved
        this.vocabSize = vocabularySize(readJson(tokenizerJson), tokenizerJson);
        try {
            this.tokenizer = HuggingFaceTokenizer.newInstance(tokenizerJson, Map.of("addSpecialTokens", "false"));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(tokenizerJson + ": not a tokenizer DJL can load: " + e.getMessage(), e);
        }
    }

    private static JsonNode readJson(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(Files.exists(file) ? file + " is not a tokenizer.json file"
                    : "tokenizer file not found: " + file);
        }
        try {
            JsonNode json = new ObjectMapper().readTree(file.toFile());
            return json != null ? json : MissingNode.getInstance(); // an empty file
        } catch (JsonProcessingException e) {
            JsonLocation at = e.getLocation();
            throw new IllegalArgumentException(file + " is not valid JSON: " + e.getOriginalMessage()
                    + (at != null ? " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")" : ""), e);
        }
    }

    private static int vocabularySize(JsonNode json, Path file) {
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
            throw new IllegalArgumentException(file + ": no vocabulary found (model.vocab or added_tokens);"
                    + " is it a HuggingFace tokenizer.json?");
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
