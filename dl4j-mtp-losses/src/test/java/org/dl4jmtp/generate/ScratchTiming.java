package org.dl4jmtp.generate;

import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;

public class ScratchTiming {
    static ThreadMXBean mx = ManagementFactory.getThreadMXBean();
    static long cpu() { return mx.getCurrentThreadCpuTime(); }
    public static void main(String[] a) throws Exception {
        INDArray v = Nd4j.rand(DataType.DOUBLE, 1, 32), w = Nd4j.rand(DataType.DOUBLE, 64, 32);
        for (int r = 0; r < 3; r++) {
            long s = System.nanoTime(), c = cpu();
            for (int i = 0; i < 2000; i++) v.mul(2.0);
            long s2 = System.nanoTime(), c2 = cpu();
            for (int i = 0; i < 2000; i++) v.mmul(w.transpose());
            long s3 = System.nanoTime(), c3 = cpu();
            for (int i = 0; i < 2000; i++) Nd4j.create(DataType.DOUBLE, 1, 32);
            long s4 = System.nanoTime(), c4 = cpu();
            System.out.printf("scalar mul wall %.1fus cpu %.1fus | mmul wall %.1fus cpu %.1fus | create wall %.1f cpu %.1f%n",
                (s2-s)/2e3, (c2-c)/2e3, (s3-s2)/2e3, (c3-c2)/2e3, (s4-s3)/2e3, (c4-c3)/2e3);
        }
        NemotronV3ForCausalLM model = GenerateTestSupport.fixtureModel(DataType.DOUBLE);
        INDArray ids = GenerateTestSupport.fixtureInputIds();
        for (int r = 0; r < 3; r++) {
            long s = System.nanoTime(), c = cpu();
            model.forward(ids);
            System.out.printf("forward %.1f ms cpu %.1f ms%n", (System.nanoTime() - s) / 1e6, (cpu() - c) / 1e6);
        }
        CachedNemotronV3 cached = CachedNemotronV3.of(model);
        int[] x = GenerateTestSupport.row(ids, 0);
        for (int r = 0; r < 3; r++) {
            long s = System.nanoTime(), c = cpu();
            DecoderCache c2 = cached.newCache();
            for (int t : x) cached.step(new int[]{t}, c2);
            System.out.printf("token by token %.1f ms/token cpu %.1f ms/token%n", (System.nanoTime() - s) / 1e6 / x.length, (cpu() - c) / 1e6 / x.length);
        }
    }
}
