package org.dl4jmtp.examples.launch;

import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.examples.train.Presets;
import org.dl4jmtp.model.DataParallelGraph;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProcessTuningTest {

    private static final long MEMORY = 24L << 30;
    /** Flags of a Zen 5 EPYC (abridged): AVX-512 with BF16, which OpenBLAS 0.3.19 does not recognise as a CPU. */
    private static final Set<String> ZEN5 = Set.of("fpu", "sse2", "avx", "avx2", "fma", "avx512f", "avx512dq",
            "avx512bw", "avx512vl", "avx512_bf16", "avx512vnni");
    private static final Set<String> HASWELL = Set.of("sse2", "avx", "avx2", "fma");

    @Test
    void kernelsFollowTheInstructionSets() {
        assertEquals(Optional.of("SKYLAKEX"), CpuKernels.openBlasCoreType(ZEN5));
        assertEquals(Optional.of("HASWELL"), CpuKernels.openBlasCoreType(HASWELL));
        // AVX-512 without BW/VL (Knights Landing) has no SkylakeX kernels
        assertEquals(Optional.of("HASWELL"), CpuKernels.openBlasCoreType(Set.of("avx", "avx2", "fma", "avx512f")));
        assertEquals(Optional.of("SANDYBRIDGE"), CpuKernels.openBlasCoreType(Set.of("sse2", "avx")));
        assertEquals(Optional.empty(), CpuKernels.openBlasCoreType(Set.of("sse2", "sse4_2")));
    }

    @Test
    void anUnsetEnvironmentGetsTheTunedSettings() {
        ProcessTuning.Plan plan = ProcessTuning.plan(Map.of(), List.of(), ZEN5, MEMORY, "train", false);
        // both pools start at the core count; the command lowers them once it knows its replicas (IntraOpThreads)
        String cores = String.valueOf(Runtime.getRuntime().availableProcessors());
        assertEquals(Map.of("GLIBC_TUNABLES", ProcessTuning.GLIBC_MALLOC, "OMP_WAIT_POLICY", "PASSIVE",
                "OMP_NUM_THREADS", cores, "OPENBLAS_NUM_THREADS", cores, IntraOpThreads.AUTO, "1",
                "OPENBLAS_CORETYPE", "SKYLAKEX"), plan.environment());
        assertEquals(List.of("-Xmx2048m", "-Dorg.bytedeco.javacpp.maxbytes=" + (MEMORY / 2),
                "-Dorg.bytedeco.javacpp.maxphysicalbytes=0", "-XX:+UseParallelGC"), plan.jvmOptions());
    }

    @Test
    void theOneDnnBuildWhereItIsOnTheClassPathUnlessAnExtensionIsSet() {
        assertTrue(ProcessTuning.oneDnnOnClassPath(), "the cpu profile puts the oneDNN build on the class path");
        String oneDnn = ProcessTuning.PLATFORM_EXTENSION + ProcessTuning.ONEDNN;
        assertTrue(ProcessTuning.plan(Map.of(), List.of(), ZEN5, MEMORY, "train", true).jvmOptions().contains(oneDnn));
        assertFalse(ProcessTuning.plan(Map.of(), List.of(), ZEN5, MEMORY, "train", false).jvmOptions().contains(oneDnn));
        String plain = ProcessTuning.PLATFORM_EXTENSION;
        assertFalse(ProcessTuning.plan(Map.of(), List.of(plain), ZEN5, MEMORY, "train", true).jvmOptions()
                .contains(oneDnn), "the user's own choice (here the plain build) is kept");
        assertFalse(ProcessTuning.plan(Map.of("JAVA_TOOL_OPTIONS", plain + "-avx2"), List.of(), ZEN5, MEMORY, "bench",
                true).jvmOptions().contains(oneDnn));
    }

    @Test
    void whatTheUserSetIsKept() {
        Map<String, String> env = Map.of("OPENBLAS_CORETYPE", "Haswell", "OMP_WAIT_POLICY", "ACTIVE",
                "OMP_NUM_THREADS", "2", "GLIBC_TUNABLES", "glibc.malloc.arena_max=4");
        ProcessTuning.Plan plan = ProcessTuning.plan(env, List.of("-Xmx6g", "-Dorg.bytedeco.javacpp.maxbytes=1G"),
                ZEN5, MEMORY, "bench", false);
        assertEquals(Map.of("OPENBLAS_NUM_THREADS", "1"), plan.environment());
        assertEquals(List.of("-Dorg.bytedeco.javacpp.maxphysicalbytes=0", "-XX:+UseParallelGC"), plan.jvmOptions());
        // a user's own physical-memory limit (JavaCPP then reads the RSS on each allocation) and collector are kept
        assertEquals(List.of(), ProcessTuning.plan(env, List.of("-Xmx6g", "-Dorg.bytedeco.javacpp.maxbytes=1G",
                "-Dorg.bytedeco.javacpp.maxphysicalbytes=20G", "-XX:+UseG1GC"), ZEN5, MEMORY, "bench", false).jvmOptions());
        // a collector chosen through the environment's JVM options too: a second choice would stop the JVM
        Map<String, String> toolOptions = Map.of("JAVA_TOOL_OPTIONS", "-Xss2m -XX:+UseZGC");
        assertFalse(ProcessTuning.plan(toolOptions, List.of(), ZEN5, MEMORY, "bench", false).jvmOptions()
                .contains("-XX:+UseParallelGC"));
    }

    @Test
    void otherGlibcTunablesAreExtendedAndOnlyTrainingAndDecodingChooseTheirThreads() {
        for (String command : List.of("generate", "bench-decode")) {
            assertEquals("1", ProcessTuning.plan(Map.of(), List.of(), HASWELL, MEMORY, command).environment()
                    .get(IntraOpThreads.AUTO), command);
        }
        ProcessTuning.Plan plan = ProcessTuning.plan(Map.of("GLIBC_TUNABLES", "glibc.pthread.rseq=0"), List.of(),
                HASWELL, MEMORY, "eval", false);
        assertEquals("glibc.pthread.rseq=0:" + ProcessTuning.GLIBC_MALLOC, plan.environment().get("GLIBC_TUNABLES"));
        assertFalse(plan.environment().containsKey("OMP_NUM_THREADS"));
        assertFalse(plan.environment().containsKey("OPENBLAS_NUM_THREADS"));
        assertEquals("HASWELL", plan.environment().get("OPENBLAS_CORETYPE"));
    }

    @Test
    void aSmallMachineGetsAQuarterOfItsMemoryAsHeap() {
        ProcessTuning.Plan plan = ProcessTuning.plan(Map.of(), List.of(), Set.of(), 4L << 30, null, false);
        assertTrue(plan.jvmOptions().contains("-Xmx1024m"), plan.jvmOptions().toString());
    }

    /** The tiny preset's steps are too small to share out; the benchmark's small preset gains from one per core. */
    @Test
    void replicasByDefaultOnlyForStepsLargeEnough() {
        NemotronV3Config tiny = Presets.byName("tiny");
        assertEquals(1, ReplicaPolicy.defaultReplicas(tiny, MtpConfig.fromHf(tiny), 8, 128));
        NemotronV3Config small = Presets.byName("small");
        assertEquals(DataParallelGraph.defaultReplicas(8), ReplicaPolicy.defaultReplicas(small, MtpConfig.fromHf(small), 8, 256));
    }

    /** Threads inside ops: one per replica when replicas share the cores, all cores for one replica of a large step. */
    @Test
    void threadsInsideOpsOnlyForOneReplicaOfALargeStep() {
        int cores = Runtime.getRuntime().availableProcessors();
        NemotronV3Config small = Presets.byName("small");
        MtpConfig mtp = MtpConfig.fromHf(small);
        assertEquals(1, ReplicaPolicy.threadsPerReplica(small, mtp, 8, 256, 2), "replicas use the cores");
        assertEquals(cores, ReplicaPolicy.threadsPerReplica(small, mtp, 1, 8192, 1), "batch 1, long sequence");
        assertEquals(cores, ReplicaPolicy.threadsPerReplica(small, mtp, 8, 256, 1), "--replicas 1 on a large step");
        NemotronV3Config tiny = Presets.byName("tiny");
        assertEquals(1, ReplicaPolicy.threadsPerReplica(tiny, MtpConfig.fromHf(tiny), 1, 128, 1), "a step too small");
    }

    @Test
    void theSubcommandIsTheFirstArgumentThatIsNoOption() {
        assertEquals("train", TunedLauncher.subcommand(new String[]{"--verbose", "train", "--preset", "tiny"}));
        assertEquals(null, TunedLauncher.subcommand(new String[]{"--version"}));
    }
}
