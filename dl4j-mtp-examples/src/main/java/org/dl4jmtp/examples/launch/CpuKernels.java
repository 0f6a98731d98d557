package org.dl4jmtp.examples.launch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Which OpenBLAS kernels suit this CPU. ND4J bundles OpenBLAS 0.3.19, which does not recognise recent CPUs (AMD Zen 4/5,
 * newer Intel cores) and then falls back to slow generic kernels; {@code OPENBLAS_CORETYPE} names the kernel family to
 * use instead. The choice follows the instruction sets the kernels need, not the CPU's name.
 */
public final class CpuKernels {

    private CpuKernels() {
    }

    /**
     * The OpenBLAS core type for a CPU with these {@code /proc/cpuinfo} flags: {@code SKYLAKEX} (AVX-512 F/BW/VL/DQ
     * kernels), {@code HASWELL} (AVX2 + FMA), {@code SANDYBRIDGE} (AVX), or empty (let OpenBLAS decide).
     */
    public static Optional<String> openBlasCoreType(Set<String> cpuFlags) {
        if (cpuFlags.containsAll(Set.of("avx512f", "avx512bw", "avx512vl", "avx512dq"))) {
            return Optional.of("SKYLAKEX");
        }
        if (cpuFlags.containsAll(Set.of("avx2", "fma"))) {
            return Optional.of("HASWELL");
        }
        if (cpuFlags.contains("avx")) {
            return Optional.of("SANDYBRIDGE");
        }
        return Optional.empty();
    }

    /** The flags of the first processor in {@code /proc/cpuinfo}, or none where it cannot be read (not Linux). */
    public static Set<String> cpuFlags() {
        try {
            return Files.readAllLines(Path.of("/proc/cpuinfo")).stream()
                    .filter(line -> line.startsWith("flags"))
                    .findFirst()
                    .map(line -> Arrays.stream(line.substring(line.indexOf(':') + 1).trim().split("\\s+"))
                            .collect(Collectors.toSet()))
                    .orElse(Set.of());
        } catch (IOException | RuntimeException e) {
            return Set.of();
        }
    }
}
