package org.dl4jmtp.examples.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.LayerRuntimeOption;
import org.dl4jmtp.examples.launch.IntraOpThreads;
import org.dl4jmtp.examples.launch.ReplicaPolicy;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.model.DataParallelGraph;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;

/**
 * Training-step benchmark on the presets shared with the PyTorch peer: by default the copy bundled in this jar
 * ({@link #BUNDLED_PRESETS}, identical to the peer's {@code ../shared/bench/presets.json}, pinned by
 * {@code BundledPresetsTest}); {@code --presets FILE} reads another file.
 *
 * <p>Builds the preset's graph (float32, random init, Adam as in the preset), draws a fresh uniform random token batch
 * per step ({@code tokens [B, T+1]}; input ids = {@code tokens[:, :-1]}, labels = {@code tokens[:, 1:]}, pre-shifted,
 * no -100) and times {@code graph.fit(MultiDataSet)}: forward (backbone + MTP depths) + loss + backward + Adam.
 * The batch is generated outside the timed region, as the peer does.
 *
 * <p>FLOPs per token use the peer's formula ({@code ../shared/peer/bench.py}):
 * {@code 6·N_active + 3·F_extra}, N_active = weights applied per token once per use (Mamba in_proj + conv1d (C·K) +
 * out_proj; attention q,k,v,o; MoE router + k routed experts' up/down (+ latent fc1/fc2) + shared expert up/down;
 * dense MLP up/down; lm_head; per MTP depth eh_proj (2H²) + its sublayers + lm_head again; embedding, norms and
 * elementwise ops excluded), F_extra = forward non-weight matmul FLOPs: 4·T·nq·hd per attention layer and
 * 2·Q·(G·N + nh·P) + 4·nh·P·N per Mamba layer. This counts a sparse MoE (k routed experts per token), which is what
 * the explicit runtime executes ({@code SparseMoe} dispatches each token to its k experts). With {@code --runtime
 * samediff} the SameDiff {@code MoeMixer} computes every expert on every token, so executed FLOPs exceed the reported
 * ones there.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Time full training steps (forward + loss + backward + Adam) on a shared benchmark preset.")
public class BenchCommand implements Callable<Integer> {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** FP32 FMA peak of the reference machine (2 cores, AVX-512), GFLOP/s. */
    public static final double PEAK_GFLOPS = 448.0;

    @Option(names = "--preset", required = true, description = "small or medium")
    String preset;

    /** Classpath resource of the bundled presets (a copy of the PyTorch peer's {@code presets.json}). */
    public static final String BUNDLED_PRESETS = "/org/dl4jmtp/examples/bench/presets.json";

    @Option(names = "--presets", description = "presets file (default: the copy bundled in the jar)")
    Path presets;

    @Option(names = "--seq-len", paramLabel = "T", description = "tokens per sequence instead of the preset's seq_len")
    Integer seqLenOverride;

    @Option(names = "--batch-size", paramLabel = "B", description = "sequences per step instead of the preset's batch_size")
    Integer batchSizeOverride;

    @Option(names = "--steps", description = "measured steps (default: ${DEFAULT-VALUE})")
    int steps = 10;

    /** The JIT compiles the step's Java code (DL4J, ND4J, our layers) during the first ≈ 10 steps; on 2 cores it
     * competes with the measured work. */
    @Option(names = "--warmup", description = "untimed steps first; fewer than ≈ 10 also time the JIT compiler"
            + " (default: ${DEFAULT-VALUE})")
    int warmup = 10;

    @Option(names = "--max-seconds", description = "stop measuring once this much time has been spent on measured"
            + " steps (at least one step is measured; 0 = no cap; default: ${DEFAULT-VALUE})")
    double maxSeconds = 0;

    @Option(names = "--seed", description = "seed of the weights and the token batches (default: ${DEFAULT-VALUE})")
    long seed = 0;

    @Option(names = "--rss-every", description = "also record VmRSS every N steps (0 = off; default: ${DEFAULT-VALUE})")
    int rssEvery = 0;

    @Option(names = "--gc-every", description = "call System.gc() every N steps, untimed (0 = never, the default)")
    int gcEvery = 0;

    @Option(names = "--op-profile", description = "attach a listener timing every op of the graph's SameDiff layers"
            + " and report the top N op types / layers over the measured steps (0 = off, the default). Needs"
            + " --runtime samediff: the explicit runtime executes no SameDiff op")
    int opProfileTop = 0;

    @CommandLine.Mixin
    LayerRuntimeOption layerRuntime = new LayerRuntimeOption();

    @Option(names = "--replicas", description = "compute each step's gradient on this many slices of the batch in"
            + " parallel (DataParallelGraph; exact); 1 = plain graph.fit (default: one per core, at most the batch size, for models large enough to gain; else 1)")
    Integer replicas;

    @Option(names = "--json", description = "print one JSON object instead of text")
    boolean json;

    public static void main(String[] args) {
        System.exit(new CommandLine(new BenchCommand()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        // M2.1's SameDiff prints "Added differentiated op ..." to System.out while building gradient functions:
        // keep stdout for the result only (text or one JSON object).
        // Under the CLI, System.out is already stderr and the real stdout is picocli's writer.
        java.io.PrintStream stdout = spec != null
                ? new java.io.PrintStream(new org.apache.commons.io.output.WriterOutputStream(spec.commandLine().getOut(),
                java.nio.charset.StandardCharsets.UTF_8), true, java.nio.charset.StandardCharsets.UTF_8) : System.out;
        java.io.PrintStream previous = System.out;
        System.setOut(System.err);
        try {
            return run(stdout);
        } finally {
            stdout.flush();
            if (spec != null) {
                spec.commandLine().getOut().flush();
            }
            System.setOut(previous);
        }
    }

    private int run(java.io.PrintStream stdout) throws Exception {
        if (steps < 1 || warmup < 0) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--steps must be >= 1 and --warmup >= 0");
        }
        ObjectMapper mapper = new ObjectMapper();
        JsonNode all = mapper.readTree(presets != null ? Files.readString(presets) : bundledPresets());
        JsonNode p = all.get(preset);
        if (p == null || !p.has("config")) {
            throw new CommandLine.ParameterException(new CommandLine(this), "no preset '" + preset + "' in "
                    + (presets != null ? presets : "the bundled presets"));
        }
        NemotronV3Config config = NemotronV3Config.fromJsonString(mapper.writeValueAsString(p.get("config")));
        int d = p.get("mtp_num_layers").asInt();
        MtpConfig mtp = MtpConfig.builder()
                .numLayers(d)
                .layerPattern(config.mtpPattern())
                .useRepeatedLayer(p.get("mtp_use_repeated_layer").asBoolean())
                .lossScalingFactor(p.get("mtp_loss_scaling_factor").asDouble())
                .build();
        JsonNode opt = p.get("optimizer");
        if (!"adam".equals(opt.get("name").asText()) || opt.get("weight_decay").asDouble() != 0.0) {
            throw new IllegalArgumentException("only Adam without weight decay is supported, preset has " + opt);
        }
        Adam adam = new Adam(opt.get("lr").asDouble(), opt.get("betas").get(0).asDouble(),
                opt.get("betas").get(1).asDouble(), opt.get("eps").asDouble());
        int batch = batchSizeOverride != null ? batchSizeOverride : p.get("batch_size").asInt();
        int seqLen = seqLenOverride != null ? seqLenOverride : p.get("seq_len").asInt();
        if (batch < 1 || seqLen < 2) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--batch-size must be >= 1 and --seq-len"
                    + " >= 2, got " + batch + " and " + seqLen);
        }
        String dtype = p.path("dtype").asText("float32");
        if (!"float32".equals(dtype)) {
            throw new IllegalArgumentException("only float32 presets are supported, got " + dtype);
        }

        if (replicas == null) {
            replicas = ReplicaPolicy.defaultReplicas(config, mtp, batch, seqLen);
        }
        int threadsPerReplica = ReplicaPolicy.threadsPerReplica(config, mtp, batch, seqLen, replicas);
        boolean threadsSet = IntraOpThreads.applyIfAuto(threadsPerReplica);
        long buildStart = System.nanoTime();
        LayerRuntime runtime = layerRuntime.get(spec == null ? null : spec.commandLine());
        if (opProfileTop > 0 && runtime != LayerRuntime.SAMEDIFF) {
            throw new IllegalArgumentException("--op-profile times SameDiff ops: use it with --runtime samediff");
        }
        ComputationGraph graph = NemotronV3ForCausalLM.graphBuilder(config, mtp)
                .updater(adam).dataType(DataType.FLOAT).seed(seed).runtime(runtime).build();
        if (replicas > 1) {
            graph = DataParallelGraph.of(graph, replicas);
        }
        double buildSeconds = (System.nanoTime() - buildStart) / 1e9;

        Flops flops = Flops.of(config, mtp, seqLen);
        long paramsAll = graph.numParams();
        long frozenBuffers = (long) (config.countLayers(org.dl4jmtp.config.BlockType.MOE)
                + (mtp.enabled() ? mtp.numPhysicalDepths() * (int) mtp.blockTypes().stream()
                .filter(t -> t == org.dl4jmtp.config.BlockType.MOE).count() : 0)) * config.getNRoutedExperts();

        Random random = new Random(seed + 1);
        OpProfiler profiler = opProfileTop > 0 ? new OpProfiler() : null;
        com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean)
                java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        List<Double> stepCpuSeconds = new ArrayList<>();
        List<Double> stepSeconds = new ArrayList<>();
        List<Double> losses = new ArrayList<>();
        Map<Integer, Long> rssAt = new LinkedHashMap<>();
        long rssStep10 = -1;
        double measuredTotal = 0;
        int total = warmup + steps;
        int done = 0;
        for (int i = 1; i <= total; i++) {
            MultiDataSet data = randomBatch(random, batch, seqLen, config.getVocabSize());
            if (profiler != null && i == warmup + 1) {
                if (profiler.attach(graph) == 0) {
                    throw new IllegalStateException("no SameDiff layer found to profile");
                }
                profiler.setEnabled(true);
            }
            long cpu0 = os.getProcessCpuTime();
            long t0 = System.nanoTime();
            graph.fit(data);
            double s = (System.nanoTime() - t0) / 1e9;
            double cpu = (os.getProcessCpuTime() - cpu0) / 1e9;
            double loss = graph.score();
            if (!Double.isFinite(loss)) {
                throw new IllegalStateException("non-finite loss " + loss + " at step " + i);
            }
            done = i;
            if (i > warmup) {
                stepSeconds.add(s);
                stepCpuSeconds.add(cpu);
                losses.add(loss);
                measuredTotal += s;
            }
            if (i == 10) {
                rssStep10 = MemInfo.rssBytes();
            }
            if (rssEvery > 0 && i % rssEvery == 0) {
                rssAt.put(i, MemInfo.rssBytes());
            }
            if (gcEvery > 0 && i % gcEvery == 0) {
                System.gc();
            }
            if (!json) {
                System.err.printf("  step %d%s: %.3f s (process CPU %.3f s), loss %.4f, RSS %.0f MiB%n", i,
                        i <= warmup ? " (warm-up)" : "", s, cpu, loss, MemInfo.rssBytes() / 1048576.0);
            }
            if (i > warmup && maxSeconds > 0 && measuredTotal >= maxSeconds && i < total) {
                break;
            }
        }
        long rssLast = MemInfo.rssBytes();

        List<Double> sorted = new ArrayList<>(stepSeconds);
        Collections.sort(sorted);
        double median = median(sorted);
        int tokensPerStep = batch * seqLen;
        double tokensPerSecond = tokensPerStep / median;
        double gflops = flops.trainPerToken() * tokensPerSecond / 1e9;

        Map<String, Object> res = new LinkedHashMap<>();
        res.put("preset", preset);
        res.put("implementation", runtime == LayerRuntime.SAMEDIFF
                ? "dl4j-mtp (DL4J/ND4J 1.0.0-M2.1 ComputationGraph, SameDiff layers, dense MoE)"
                : "dl4j-mtp (DL4J/ND4J 1.0.0-M2.1 ComputationGraph, explicit layers, sparse MoE)");
        res.put("runtime", runtime.cliName());
        res.put("batch_size", batch);
        res.put("seq_len", seqLen);
        res.put("tokens_per_step", tokensPerStep);
        res.put("steps", stepSeconds.size());
        res.put("steps_requested", steps);
        res.put("warmup", warmup);
        res.put("last_step", done);
        res.put("median_step_s", median);
        res.put("min_step_s", sorted.get(0));
        res.put("max_step_s", sorted.get(sorted.size() - 1));
        res.put("step_s_all", stepSeconds);
        List<Double> cpuSorted = new ArrayList<>(stepCpuSeconds);
        Collections.sort(cpuSorted);
        res.put("median_step_process_cpu_s", median(cpuSorted));
        res.put("load_average_1min", os.getSystemLoadAverage());
        res.put("median_tokens_per_s", tokensPerSecond);
        res.put("peak_rss_mib", MemInfo.peakRssBytes() / 1048576.0);
        res.put("rss_step10_mib", rssStep10 < 0 ? null : rssStep10 / 1048576.0);
        res.put("rss_last_step_mib", rssLast / 1048576.0);
        if (!rssAt.isEmpty()) {
            Map<String, Double> mib = new LinkedHashMap<>();
            rssAt.forEach((k, v) -> mib.put(String.valueOf(k), v / 1048576.0));
            res.put("rss_mib_by_step", mib);
        }
        res.put("jvm_heap_used_mib", (Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory()) / 1048576.0);
        res.put("params_total", paramsAll);
        res.put("params_trainable", paramsAll - frozenBuffers);
        res.put("frozen_buffers", frozenBuffers);
        res.put("active_params_per_token", flops.activeParams());
        res.put("attn_ssd_fwd_flops_per_token", flops.extraForward());
        res.put("train_flops_per_token", flops.trainPerToken());
        res.put("flops_formula", Flops.FORMULA);
        res.put("achieved_gflops", gflops);
        res.put("percent_of_peak", 100.0 * gflops / PEAK_GFLOPS);
        res.put("peak_gflops", PEAK_GFLOPS);
        res.put("loss_first_last", List.of(losses.get(0), losses.get(losses.size() - 1)));
        res.put("graph_build_s", buildSeconds);
        res.put("replicas", replicas);
        res.put("intra_op_threads", threadsSet ? threadsPerReplica : null);
        res.put("env", environment());
        if (profiler != null) {
            res.put("op_profile", profiler.report(stepSeconds.size(), opProfileTop));
        }

        if (json) {
            stdout.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(res));
        } else {
            printText(stdout, res, stepSeconds, flops);
        }
        return 0;
    }

    private void printText(java.io.PrintStream out, Map<String, Object> r, List<Double> stepSeconds, Flops flops) {
        @SuppressWarnings("unchecked")
        Map<String, Object> env = (Map<String, Object>) r.get("env");
        out.printf("preset %s: batch %s x seq %s = %s tokens/step, float32, dl4j-mtp (ND4J %s threads, %s replica(s))%n",
                preset, r.get("batch_size"), r.get("seq_len"), r.get("tokens_per_step"), env.get("nd4j_max_threads"),
                r.get("replicas"));
        out.printf("  env: GLIBC_TUNABLES=%s OMP_WAIT_POLICY=%s OMP_NUM_THREADS=%s OPENBLAS_CORETYPE=%s%n",
                env.get("GLIBC_TUNABLES"), env.get("OMP_WAIT_POLICY"), env.get("OMP_NUM_THREADS"),
                env.get("OPENBLAS_CORETYPE"));
        out.printf("  params %,d (%,d trainable + %,d frozen router-bias buffers) | active/token %,d | "
                        + "train FLOPs/token %.2f M%n", (long) r.get("params_total"), (long) r.get("params_trainable"),
                (long) r.get("frozen_buffers"), flops.activeParams(), flops.trainPerToken() / 1e6);
        out.println("  FLOPs/token = " + Flops.FORMULA);
        StringBuilder sb = new StringBuilder();
        for (double s : stepSeconds) {
            sb.append(String.format(" %.3f", s));
        }
        out.printf("  steps (%d measured after %d warm-up):%s s%n", stepSeconds.size(), warmup, sb);
        out.printf("  median step %.3f s | %,.0f tokens/s | %.2f GFLOP/s (%.1f %% of %.0f peak)%n",
                (double) r.get("median_step_s"), (double) r.get("median_tokens_per_s"), (double) r.get("achieved_gflops"),
                (double) r.get("percent_of_peak"), PEAK_GFLOPS);
        Object rss10 = r.get("rss_step10_mib");
        out.printf("  peak RSS %.0f MiB | RSS at step 10 %s | RSS at last step (%d) %.0f MiB%n",
                (double) r.get("peak_rss_mib"), rss10 == null ? "n/a" : String.format("%.0f MiB", (double) rss10),
                (int) r.get("last_step"), (double) r.get("rss_last_step_mib"));
        @SuppressWarnings("unchecked")
        List<Double> l = (List<Double>) r.get("loss_first_last");
        out.printf("  loss %.4f -> %.4f | graph build %.1f s | median process CPU per step %.3f s | load average %.2f%n",
                l.get(0), l.get(1), (double) r.get("graph_build_s"), (double) r.get("median_step_process_cpu_s"),
                (double) r.get("load_average_1min"));
        if (r.containsKey("op_profile")) {
            try {
                out.println("  op profile (per measured step): " + new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
                        .writeValueAsString(r.get("op_profile")));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private static Map<String, Object> environment() {
        Map<String, Object> env = new LinkedHashMap<>();
        for (String k : new String[]{"GLIBC_TUNABLES", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE",
                "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}) {
            env.put(k, System.getenv(k));
        }
        env.put("java", System.getProperty("java.version"));
        env.put("cpus", Runtime.getRuntime().availableProcessors());
        try {
            env.put("nd4j_max_threads", Nd4j.getEnvironment().maxThreads());
            env.put("nd4j_max_master_threads", Nd4j.getEnvironment().maxMasterThreads());
            env.put("nd4j_backend", Nd4j.getBackend().getClass().getSimpleName());
            Object blas = Nd4j.getExecutioner().getEnvironmentInformation().get("blas.vendor");
            env.put("blas_vendor", blas == null ? null : blas.toString());
        } catch (RuntimeException e) {
            env.put("nd4j_info_error", e.toString());
        }
        env.put("max_heap_mib", Runtime.getRuntime().maxMemory() / 1048576);
        env.put("javacpp_maxbytes", System.getProperty("org.bytedeco.javacpp.maxbytes"));
        env.put("javacpp_maxphysicalbytes", System.getProperty("org.bytedeco.javacpp.maxphysicalbytes"));
        return env;
    }

    /** The presets bundled with the jar ({@link #BUNDLED_PRESETS}), as text. */
    public static String bundledPresets() throws IOException {
        try (java.io.InputStream in = BenchCommand.class.getResourceAsStream(BUNDLED_PRESETS)) {
            if (in == null) {
                throw new IOException("bundled presets missing from the classpath: " + BUNDLED_PRESETS);
            }
            return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        }
    }

    private static double median(List<Double> sorted) {
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : 0.5 * (sorted.get(n / 2 - 1) + sorted.get(n / 2));
    }

    /** tokens [B, T+1] uniform in [0, V); features = tokens[:, :-1], labels = tokens[:, 1:], both [B, 1, T] float. */
    static MultiDataSet randomBatch(Random random, int batch, int seqLen, int vocab) {
        float[] ids = new float[batch * seqLen];
        float[] labels = new float[batch * seqLen];
        for (int b = 0; b < batch; b++) {
            int prev = random.nextInt(vocab);
            for (int t = 0; t < seqLen; t++) {
                int next = random.nextInt(vocab);
                ids[b * seqLen + t] = prev;
                labels[b * seqLen + t] = next;
                prev = next;
            }
        }
        INDArray f = Nd4j.create(ids, new long[]{batch, 1, seqLen}, DataType.FLOAT);
        INDArray l = Nd4j.create(labels, new long[]{batch, 1, seqLen}, DataType.FLOAT);
        return new MultiDataSet(new INDArray[]{f}, new INDArray[]{l});
    }

    /** Process memory from /proc/self/status (includes off-heap ND4J buffers). */
    static final class MemInfo {
        private MemInfo() {
        }

        static long rssBytes() {
            return field("VmRSS:");
        }

        static long peakRssBytes() {
            return field("VmHWM:");
        }

        private static long field(String name) {
            try {
                for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                    if (line.startsWith(name)) {
                        String[] parts = line.substring(name.length()).trim().split("\\s+");
                        return Long.parseLong(parts[0]) * 1024L;
                    }
                }
            } catch (IOException | RuntimeException e) {
                return -1;
            }
            return -1;
        }
    }
}
