/**
 * Fast generation for NemotronV3 models with MTP heads (docs/model.md, "Decoding"): a cached inference path and greedy
 * MTP
 * self-speculative decoding, in plain ND4J on the trained graph's live parameter views.
 * <ul>
 *   <li>{@link org.dl4jmtp.generate.CachedNemotronV3}: per-block state (Mamba2 conv window + SSM state, attention
 *   KV cache) for the backbone and for every MTP depth; {@code step} (main model: logits and hidden after norm_f)
 *   and {@code mtpStep} (depth d: (h^{d−1}_t, x[t+d]) → h^d and logits), equal to the graph's full forward.</li>
 *   <li>{@link org.dl4jmtp.generate.TokenDecoder}s: {@link org.dl4jmtp.generate.FullRecomputeDecoder} (reference,
 *   {@code model.forward} on the whole sequence every step), {@link org.dl4jmtp.generate.CachedGreedyDecoder} (both
 *   greedy or sampling through a {@link org.dl4jmtp.generate.Sampler}) and
 *   {@link org.dl4jmtp.generate.SpeculativeDecoder} (k drafts, one verify step, rollback; output identical to
 *   greedy), with {@link org.dl4jmtp.generate.SpeculativeStats} in vLLM's vocabulary.</li>
 *   <li>{@link org.dl4jmtp.generate.DecodeBenchmark}: the three modes on one prompt set, as
 *   {@link org.dl4jmtp.generate.DecodeBenchmarkResult} (tokens/s, speed-ups, acceptance; {@code toJsonMap()}).</li>
 * </ul>
 */
package org.dl4jmtp.generate;
