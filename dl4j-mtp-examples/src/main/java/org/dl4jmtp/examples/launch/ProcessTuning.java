package org.dl4jmtp.examples.launch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The process settings dl4j-mtp runs fastest with on a CPU, which must be in place before ND4J's native libraries load
 * (glibc, OpenMP and OpenBLAS read them at start-up). A value the user set is always kept; only what is unset is added.
 *
 * <ul>
 *   <li>{@code GLIBC_TUNABLES}: glibc keeps freed memory instead of handing it back to the kernel (no mmap for big
 *       blocks, one arena, no trimming): every page returned costs a page fault when ND4J allocates again.</li>
 *   <li>{@code OMP_WAIT_POLICY=PASSIVE}: idle OpenMP threads sleep instead of spinning on the cores BLAS needs.</li>
 *   <li>For {@code train}, {@code bench}, {@code generate} and {@code bench-decode}, both thread pools at the core
 *       count and {@value IntraOpThreads#AUTO}=1: the command then sets the threads inside each op once it knows its
 *       work ({@link IntraOpThreads}, {@link ReplicaPolicy}): one per replica when replicas use the cores (one
 *       single-threaded replica per core is faster than threads inside ops on models of this size), all of them for
 *       a single replica of a large step (batch 1); one for decoding a small model. A user's own
 *       {@code OMP_NUM_THREADS} or {@code OPENBLAS_NUM_THREADS} is kept, the other pool then single-threaded as
 *       before, and nothing is changed at run time.</li>
 *   <li>{@code OPENBLAS_CORETYPE} from the CPU's flags ({@link CpuKernels}), for kernels ND4J's OpenBLAS would not
 *       pick itself.</li>
 *   <li>A Java heap of at most 2 GiB (the data lives off-heap; a large idle heap delays the collection that frees
 *       ND4J's buffers) with JavaCPP's off-heap limit raised accordingly, so the heap bound does not cap ND4J.</li>
 *   <li>The parallel collector: every ND4J array leaves a tracked reference that the next young collection copies,
 *       and G1 spent about a sixth of a small training step on them; the parallel collector, made for throughput,
 *       spends less. Kept off when the options (or {@code JAVA_TOOL_OPTIONS}/{@code JDK_JAVA_OPTIONS}) choose one.</li>
 *   <li>ND4J's CPU backend built with oneDNN ({@code org.bytedeco.javacpp.platform.extension=-onednn}) when it is on
 *       the class path, as in the jar: oneDNN's GEMMs choose AVX-512 or AVX2 kernels at run time whatever
 *       {@code OPENBLAS_CORETYPE} says, about twice OpenBLAS's on this project's model sizes (medium preset +21 %).
 *       Kept off when the options (or {@code JAVA_TOOL_OPTIONS}/{@code JDK_JAVA_OPTIONS}) set an extension.</li>
 *   <li>No JavaCPP physical-memory check ({@code maxphysicalbytes=0}): with a limit set, JavaCPP reads the process's
 *       resident size on every native allocation, and ND4J allocates a shape descriptor for every array it creates;
 *       that read was a fifth of a decoding step and a tenth of a small training step.</li>
 * </ul>
 */
public final class ProcessTuning {

    static final String GLIBC_MALLOC = "glibc.malloc.mmap_max=0:glibc.malloc.arena_max=1"
            + ":glibc.malloc.trim_threshold=68719476736";
    private static final long GIB = 1L << 30;
    /** The commands that set their threads inside ops once they know their work ({@link IntraOpThreads}). */
    private static final Set<String> CHOOSES_THREADS = Set.of("train", "bench", "generate", "bench-decode");
    /** JavaCPP's choice among builds of a native library, and the oneDNN build of ND4J's CPU backend. */
    static final String PLATFORM_EXTENSION = "-Dorg.bytedeco.javacpp.platform.extension=";
    static final String ONEDNN = "-onednn";
    private static final String ONEDNN_LIBRARY =
            "org/nd4j/linalg/cpu/nativecpu/bindings/linux-x86_64-onednn/libnd4jcpu.so";

    /** Environment variables and JVM options to add for the child process. */
    public record Plan(Map<String, String> environment, List<String> jvmOptions) {
    }

    private ProcessTuning() {
    }

    /**
     * @param environment the current environment
     * @param jvmOptions  the JVM options this process was started with
     * @param cpuFlags    the CPU's {@code /proc/cpuinfo} flags
     * @param memoryBytes the machine's physical memory
     * @param command     the subcommand ({@code train}, {@code bench}, ...), or null
     */
    public static Plan plan(Map<String, String> environment, List<String> jvmOptions, Set<String> cpuFlags,
                            long memoryBytes, String command) {
        return plan(environment, jvmOptions, cpuFlags, memoryBytes, command, oneDnnOnClassPath());
    }

    /** As {@link #plan(Map, List, Set, long, String)}, saying whether the oneDNN build is on the class path. */
    static Plan plan(Map<String, String> environment, List<String> jvmOptions, Set<String> cpuFlags,
                     long memoryBytes, String command, boolean oneDnn) {
        Map<String, String> env = new LinkedHashMap<>();
        String glibc = environment.getOrDefault("GLIBC_TUNABLES", "");
        if (!glibc.contains("glibc.malloc.")) {
            env.put("GLIBC_TUNABLES", glibc.isEmpty() ? GLIBC_MALLOC : glibc + ":" + GLIBC_MALLOC);
        }
        putIfUnset(env, environment, "OMP_WAIT_POLICY", "PASSIVE");
        if (command != null && CHOOSES_THREADS.contains(command)) {
            if (!environment.containsKey("OMP_NUM_THREADS") && !environment.containsKey("OPENBLAS_NUM_THREADS")) {
                String cores = String.valueOf(Runtime.getRuntime().availableProcessors());
                env.put("OMP_NUM_THREADS", cores);
                env.put("OPENBLAS_NUM_THREADS", cores);
                env.put(IntraOpThreads.AUTO, "1");
            } else {
                putIfUnset(env, environment, "OMP_NUM_THREADS", "1");
                putIfUnset(env, environment, "OPENBLAS_NUM_THREADS", "1");
            }
        }
        if (!environment.containsKey("OPENBLAS_CORETYPE")) {
            CpuKernels.openBlasCoreType(cpuFlags).ifPresent(type -> env.put("OPENBLAS_CORETYPE", type));
        }

        List<String> jvm = new ArrayList<>();
        long heap = Math.max(256L << 20, Math.min(2 * GIB, memoryBytes / 4));
        if (jvmOptions.stream().noneMatch(o -> o.startsWith("-Xmx") || o.startsWith("-XX:MaxRAMPercentage"))) {
            jvm.add("-Xmx" + (heap >> 20) + "m");
        }
        if (jvmOptions.stream().noneMatch(o -> o.startsWith("-Dorg.bytedeco.javacpp.maxbytes="))) {
            jvm.add("-Dorg.bytedeco.javacpp.maxbytes=" + memoryBytes / 2);
        }
        if (jvmOptions.stream().noneMatch(o -> o.startsWith("-Dorg.bytedeco.javacpp.maxphysicalbytes="))) {
            jvm.add("-Dorg.bytedeco.javacpp.maxphysicalbytes=0");
        }
        String launcherOptions = environment.getOrDefault("JAVA_TOOL_OPTIONS", "") + " "
                + environment.getOrDefault("JDK_JAVA_OPTIONS", "");
        if (jvmOptions.stream().noneMatch(ProcessTuning::selectsCollector) && !selectsCollector(launcherOptions)) {
            jvm.add("-XX:+UseParallelGC");
        }
        if (oneDnn && jvmOptions.stream().noneMatch(o -> o.startsWith(PLATFORM_EXTENSION))
                && !launcherOptions.contains(PLATFORM_EXTENSION)) {
            jvm.add(PLATFORM_EXTENSION + ONEDNN);
        }
        return new Plan(env, jvm);
    }

    /** Whether ND4J's oneDNN build for linux-x86_64 is on the class path (it is in the jar). */
    static boolean oneDnnOnClassPath() {
        return ProcessTuning.class.getClassLoader().getResource(ONEDNN_LIBRARY) != null;
    }

    /** Whether JVM options choose a garbage collector (a second choice would stop the JVM from starting). */
    private static boolean selectsCollector(String options) {
        return options.matches("(?s).*-XX:[+-]Use\\w*GC\\b.*");
    }

    private static void putIfUnset(Map<String, String> out, Map<String, String> environment, String key, String value) {
        if (!environment.containsKey(key)) {
            out.put(key, value);
        }
    }
}
