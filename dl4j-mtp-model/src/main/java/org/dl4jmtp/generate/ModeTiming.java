package org.dl4jmtp.generate;

import java.util.LinkedHashMap;
import java.util.Map;

/** Throughput of one decoding mode over a prompt set: new tokens and wall time (prefill included). */
public record ModeTiming(String mode, long tokens, long elapsedNanos) {

    public double tokensPerSecond() {
        return elapsedNanos == 0 ? 0.0 : tokens / (elapsedNanos / 1e9);
    }

    public Map<String, Object> toJsonMap() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("mode", mode);
        out.put("tokens", tokens);
        out.put("seconds", elapsedNanos / 1e9);
        out.put("tokens_per_second", tokensPerSecond());
        return out;
    }
}
