package org.dl4jmtp.attention;

import org.dl4jmtp.layers.RowMixer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Not a test: forward + backward time of the attention mixer alone, dense [T, T] path against the blocked one,
 * alternating, in float32 (the presets' type). Args: batch time hidden heads kvHeads headDim [iterations [blockSize]].
 */
public final class AttentionTiming {

    public static void main(String[] args) {
        int batch = Integer.parseInt(args[0]);
        int time = Integer.parseInt(args[1]);
        int hidden = Integer.parseInt(args[2]);
        AttentionConfig c = new AttentionConfig();
        c.setHiddenSize(hidden);
        c.setNumAttentionHeads(Integer.parseInt(args[3]));
        c.setNumKeyValueHeads(Integer.parseInt(args[4]));
        c.setHeadDim(Integer.parseInt(args[5]));
        int iterations = args.length > 6 ? Integer.parseInt(args[6]) : 20;
        int blockSize = args.length > 7 ? Integer.parseInt(args[7]) : CausalAttention.BLOCK_SIZE;
        DataType type = DataType.FLOAT;
        Map<String, INDArray> params = new LinkedHashMap<>();
        params.put(AttentionMixer.Q_PROJ, Nd4j.randn(type, c.queryWidth(), hidden).muli(0.1));
        params.put(AttentionMixer.K_PROJ, Nd4j.randn(type, c.kvWidth(), hidden).muli(0.1));
        params.put(AttentionMixer.V_PROJ, Nd4j.randn(type, c.kvWidth(), hidden).muli(0.1));
        params.put(AttentionMixer.O_PROJ, Nd4j.randn(type, hidden, c.queryWidth()).muli(0.1));
        Map<String, INDArray> gradients = new LinkedHashMap<>();
        params.forEach((k, v) -> gradients.put(k, Nd4j.zerosLike(v)));
        INDArray x = Nd4j.randn(type, (long) batch * time, hidden);
        INDArray gradOut = Nd4j.randn(type, (long) batch * time, hidden);
        CausalAttention dense = new CausalAttention(c, params, "", blockSize, Integer.MAX_VALUE, 0);
        CausalAttention blocked = new CausalAttention(c, params, "", blockSize, 0, 0);
        long[] d = new long[iterations];
        long[] b = new long[iterations];
        for (int i = -3; i < iterations; i++) {
            long t0 = System.nanoTime();
            step(dense, x, batch, gradOut, gradients);
            long t1 = System.nanoTime();
            step(blocked, x, batch, gradOut, gradients);
            long t2 = System.nanoTime();
            if (i >= 0) {
                d[i] = t1 - t0;
                b[i] = t2 - t1;
            }
        }
        Arrays.sort(d);
        Arrays.sort(b);
        System.out.printf("B=%d T=%d H=%d nq=%d nkv=%d hd=%d block=%d: dense median %.2f ms (min %.2f), blocked median %.2f ms (min %.2f)%n",
                batch, time, hidden, c.getNumAttentionHeads(), c.getNumKeyValueHeads(), c.getHeadDim(),
                blockSize, d[iterations / 2] / 1e6, d[0] / 1e6, b[iterations / 2] / 1e6, b[0] / 1e6);
    }

    private static void step(CausalAttention mixer, INDArray x, int batch, INDArray gradOut,
                             Map<String, INDArray> gradients) {
        RowMixer.Result<CausalAttention.Forward> r = mixer.forward(x, batch, RowMixer.Cache.CURRENT_SCOPE);
        mixer.backward(r.state, gradOut, gradients);
        Nd4j.getExecutioner().commit();
    }
}
