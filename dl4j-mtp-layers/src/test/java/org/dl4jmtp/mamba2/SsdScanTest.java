package org.dl4jmtp.mamba2;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.dl4jmtp.block.NemotronV3Block;
import org.dl4jmtp.block.NemotronV3BlockLayer;
import org.dl4jmtp.config.BlockType;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.DoublePrecisionSingleThread;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.validation.GradCheckUtil;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;

import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link SsdScan#scan} (chunked SSD) against the per-timestep Mamba2 recurrence of docs/model.md, "Mamba2" step 6,
 * written out in plain Java; and the full {@link Mamba2Mixer} inside a {@link NemotronV3BlockLayer} against a plain-Java reference
 * of docs/model.md, "Backbone and block" and "Mamba2" steps 2–8.
 */
@ExtendWith(DoublePrecisionSingleThread.class)
class SsdScanTest {

    private static final double TOL = 1e-10;


    /** Inputs of one scan: x [B,T,nh,P], dt [B,T,nh] (> 0), a [nh] (< 0), b and c [B,T,G,N]. */
    private static final class ScanInputs {
        final INDArray x;
        final INDArray dt;
        final INDArray a;
        final INDArray b;
        final INDArray c;

        ScanInputs(long seed, int batch, int t, int nh, int p, int g, int n) {
            Random r = new Random(seed);
            x = gaussian(r, batch, t, nh, p);
            b = gaussian(r, batch, t, g, n);
            c = gaussian(r, batch, t, g, n);
            dt = Nd4j.create(DataType.DOUBLE, batch, t, nh);
            for (int i = 0; i < dt.length(); i++) {
                dt.putScalar(i, Math.log1p(Math.exp(r.nextGaussian())));      // softplus: (0.05, 3)
            }
            a = Nd4j.create(DataType.DOUBLE, nh);
            for (int h = 0; h < nh; h++) {
                a.putScalar(h, -Math.exp(r.nextDouble() * 2 - 1.5));          // A = -exp(A_log)
            }
        }

        Map<String, INDArray> feed() {
            Map<String, INDArray> m = new HashMap<>();
            m.put("x", x);
            m.put("dt", dt);
            m.put("a", a);
            m.put("b", b);
            m.put("c", c);
            return m;
        }
    }

    private static INDArray gaussian(Random r, long... shape) {
        INDArray out = Nd4j.create(DataType.DOUBLE, shape);
        for (long i = 0; i < out.length(); i++) {
            out.putScalar(i, r.nextGaussian());
        }
        return out;
    }

    /**
     * docs/model.md, "Mamba2" step 6, per head h with state S ∈ R^{P×N}, S_{-1} = 0:
     * S_t = exp(dt·A)·S_{t-1} + dt·x_t ⊗ B_t;  y_t = S_t·C_t;  head h reads group h / (nh/G).
     */
    static double[][][][] recurrence(INDArray x, INDArray dt, INDArray a, INDArray b, INDArray c) {
        int batch = (int) x.size(0);
        int t = (int) x.size(1);
        int nh = (int) x.size(2);
        int p = (int) x.size(3);
        int g = (int) b.size(2);
        int n = (int) b.size(3);
        int headsPerGroup = nh / g;
        double[][][][] y = new double[batch][t][nh][p];
        for (int bi = 0; bi < batch; bi++) {
            for (int h = 0; h < nh; h++) {
                int grp = h / headsPerGroup;
                double[][] s = new double[p][n];
                for (int ti = 0; ti < t; ti++) {
                    double step = dt.getDouble(bi, ti, h);
                    double decay = Math.exp(step * a.getDouble(h));
                    for (int pi = 0; pi < p; pi++) {
                        double xv = x.getDouble(bi, ti, h, pi);
                        double acc = 0;
                        for (int ni = 0; ni < n; ni++) {
                            s[pi][ni] = decay * s[pi][ni] + step * xv * b.getDouble(bi, ti, grp, ni);
                            acc += s[pi][ni] * c.getDouble(bi, ti, grp, ni);
                        }
                        y[bi][ti][h][pi] = acc;
                    }
                }
            }
        }
        return y;
    }

    /** A scan graph with placeholders of dynamic batch and time. */
    private static SameDiff scanGraph(int nh, int p, int g, int n, int q) {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, -1, nh, p);
        SDVariable dt = sd.placeHolder("dt", DataType.DOUBLE, -1, -1, nh);
        SDVariable a = sd.placeHolder("a", DataType.DOUBLE, nh);
        SDVariable b = sd.placeHolder("b", DataType.DOUBLE, -1, -1, g, n);
        SDVariable c = sd.placeHolder("c", DataType.DOUBLE, -1, -1, g, n);
        SDVariable y = SsdScan.scan(sd, x, dt, a, b, c, nh, p, g, n, q);
        sd.updateVariableNameAndReference(y, "y");
        return sd;
    }

    private static void assertMatchesRecurrence(SameDiff sd, ScanInputs in, String what) {
        INDArray y = sd.output(in.feed(), "y").get("y");
        assertArrayEquals(in.x.shape(), y.shape(), what);
        double[][][][] ref = recurrence(in.x, in.dt, in.a, in.b, in.c);
        double maxRef = 0;
        for (int bi = 0; bi < ref.length; bi++) {
            for (int ti = 0; ti < ref[bi].length; ti++) {
                for (int h = 0; h < ref[bi][ti].length; h++) {
                    for (int pi = 0; pi < ref[bi][ti][h].length; pi++) {
                        double expected = ref[bi][ti][h][pi];
                        maxRef = Math.max(maxRef, Math.abs(expected));
                        assertEquals(expected, y.getDouble(bi, ti, h, pi), TOL * Math.max(1.0, Math.abs(expected)),
                                what + " at b=" + bi + " t=" + ti + " h=" + h + " p=" + pi);
                    }
                }
            }
        }
        assertTrue(maxRef > 0.1, "degenerate reference for " + what);
    }

    @Test
    void scanEqualsRecurrenceForEveryLengthAndChunkSize() {
        int nh = 4;
        int g = 2;
        int p = 3;
        int n = 5;
        for (int q : new int[]{4, 8}) {
            // one graph per chunk size, fed every T: the sequence length is dynamic
            SameDiff sd = scanGraph(nh, p, g, n, q);
            for (int t : new int[]{1, 5, q, q + 3, 3 * q}) {
                ScanInputs in = new ScanInputs(1000L * q + t, 2, t, nh, p, g, n);
                assertMatchesRecurrence(sd, in, "Q=" + q + " T=" + t);
            }
        }
    }

    @Test
    void scanEqualsRecurrenceForEveryGroupCount() {
        int nh = 4;
        int q = 4;
        int t = 7;
        for (int g : new int[]{1, 2, 4}) {
            SameDiff sd = scanGraph(nh, 2, g, 3, q);
            assertMatchesRecurrence(sd, new ScanInputs(77 + g, 3, t, nh, 2, g, 3), "G=" + g);
        }
    }

    @Test
    void scanEqualsRecurrenceWithLongDecays() {
        // large dt·|A| (strong decay, exp(segsum) far below 1) across 3 chunks
        int nh = 2;
        int g = 1;
        int q = 4;
        ScanInputs in = new ScanInputs(5, 1, 11, nh, 2, g, 2);
        in.dt.muli(4.0);
        assertMatchesRecurrence(scanGraph(nh, 2, g, 2, q), in, "long decays");
    }

    @Test
    void scanPassesGradientCheckWithPartialLastChunk() {
        int nh = 2;
        int g = 1;
        int p = 2;
        int n = 2;
        int q = 4;
        ScanInputs in = new ScanInputs(9, 1, 6, nh, p, g, n);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", in.x);
        SDVariable dt = sd.var("dt", in.dt);
        SDVariable a = sd.var("a", in.a);
        SDVariable b = sd.var("b", in.b);
        SDVariable c = sd.var("c", in.c);
        SDVariable y = SsdScan.scan(sd, x, dt, a, b, c, nh, p, g, n, q);
        SDVariable loss = y.mul(sd.constant(gaussian(new Random(10), 1, 6, nh, p))).sum();
        sd.setLossVariables(loss.name());
        // at most 6 values of each input (every n-th), to keep the test fast: one forward pass costs tens of ms
        assertTrue(GradCheckUtil.checkGradients(sd, Collections.emptyMap(), 1e-6, 1e-5, 1e-8, false, false,
                false, false, null, null, 6, GradCheckUtil.Subset.EVERY_N));
    }

    // =====================================================================================================
    // Full Mamba2 block against a plain-Java reference

    private static NemotronV3Config mambaConfig() {
        NemotronV3Config cfg = new NemotronV3Config();
        cfg.setVocabSize(11);
        cfg.setHiddenSize(8);
        cfg.hybridOverridePattern("M");
        cfg.setNumAttentionHeads(2);
        cfg.setNumKeyValueHeads(1);
        cfg.setHeadDim(4);
        cfg.setMambaNumHeads(4);
        cfg.setMambaHeadDim(2);
        cfg.setSsmStateSize(3);
        cfg.setNGroups(2);
        cfg.setConvKernel(3);
        cfg.setChunkSize(4);
        cfg.setLayerNormEpsilon(1e-5);
        cfg.validate();
        return cfg;
    }

    @Test
    void mamba2BlockEqualsPlainJavaReference() {
        NemotronV3Config cfg = mambaConfig();
        int h = cfg.getHiddenSize();
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder()
                .dataType(DataType.DOUBLE).updater(new NoOp()).seed(3)
                .graphBuilder()
                .addInputs("in")
                .addLayer("block", new NemotronV3BlockLayer.Builder().config(cfg).blockType(BlockType.MAMBA).build(), "in")
                .setOutputs("block")
                .build();
        ComputationGraph graph = new ComputationGraph(conf);
        graph.init();

        // non-trivial values for every parameter (the HF init has unit norms, zero biases, ...)
        Random r = new Random(21);
        Map<String, INDArray> params = graph.getLayer("block").paramTable();
        assertEquals(9, params.size(), params.keySet().toString());
        for (Map.Entry<String, INDArray> e : params.entrySet()) {
            INDArray v = e.getValue();
            for (long i = 0; i < v.length(); i++) {
                double z = r.nextGaussian();
                v.putScalar(i, e.getKey().endsWith("norm.weight") ? 1 + 0.3 * z : 0.5 * z);
            }
        }
        // exercise both T < Q·k and partial chunks, and batch > 1
        for (int t : new int[]{1, 6, 9}) {
            INDArray input = gaussian(r, 2, h, t);
            INDArray out = graph.outputSingle(input);
            assertArrayEquals(new long[]{2, h, t}, out.shape());
            double[][][] ref = mamba2BlockReference(cfg, params, input);
            for (int b = 0; b < 2; b++) {
                for (int f = 0; f < h; f++) {
                    for (int ti = 0; ti < t; ti++) {
                        double expected = ref[b][f][ti];
                        assertEquals(expected, out.getDouble(b, f, ti), TOL * Math.max(1.0, Math.abs(expected)),
                                "T=" + t + " b=" + b + " f=" + f + " t=" + ti);
                    }
                }
            }
        }
    }

    /**
     * docs/model.md, "Backbone and block" (pre-RMSNorm, residual) around "Mamba2" steps 2–8; input and output NCW
     * [mb, H, T].
     */
    private static double[][][] mamba2BlockReference(NemotronV3Config cfg, Map<String, INDArray> p, INDArray input) {
        int mb = (int) input.size(0);
        int h = cfg.getHiddenSize();
        int t = (int) input.size(2);
        int nh = cfg.getMambaNumHeads();
        int hp = cfg.getMambaHeadDim();
        int g = cfg.getNGroups();
        int n = cfg.getSsmStateSize();
        int k = cfg.getConvKernel();
        int dInner = cfg.dInner();
        int convDim = cfg.convDim();
        int inProj = cfg.inProjSize();
        double eps = cfg.getLayerNormEpsilon();
        INDArray normW = p.get(NemotronV3Block.NORM);
        INDArray wIn = p.get(NemotronV3Block.MIXER_PREFIX + Mamba2Mixer.IN_PROJ);
        INDArray convW = p.get(NemotronV3Block.MIXER_PREFIX + Mamba2Mixer.CONV_WEIGHT);
        INDArray convB = p.get(NemotronV3Block.MIXER_PREFIX + Mamba2Mixer.CONV_BIAS);
        INDArray dtBias = p.get(NemotronV3Block.MIXER_PREFIX + Mamba2Mixer.DT_BIAS);
        INDArray aLog = p.get(NemotronV3Block.MIXER_PREFIX + Mamba2Mixer.A_LOG);
        INDArray dSkip = p.get(NemotronV3Block.MIXER_PREFIX + Mamba2Mixer.D);
        INDArray gNormW = p.get(NemotronV3Block.MIXER_PREFIX + Mamba2Mixer.NORM);
        INDArray wOut = p.get(NemotronV3Block.MIXER_PREFIX + Mamba2Mixer.OUT_PROJ);

        double[][][] result = new double[mb][h][t];
        for (int b = 0; b < mb; b++) {
            double[][] xIn = new double[t][h];
            double[][] zxbcdt = new double[t][inProj];
            for (int ti = 0; ti < t; ti++) {
                for (int f = 0; f < h; f++) {
                    xIn[ti][f] = input.getDouble(b, f, ti);
                }
                double[] u = rmsNorm(xIn[ti], eps);
                for (int f = 0; f < h; f++) {
                    u[f] *= normW.getDouble(f);
                }
                for (int o = 0; o < inProj; o++) {
                    double s = 0;
                    for (int f = 0; f < h; f++) {
                        s += wIn.getDouble(o, f) * u[f];
                    }
                    zxbcdt[ti][o] = s;
                }
            }
            // step 3: causal depthwise conv + SiLU over xBC
            double[][] xbc = new double[t][convDim];
            for (int ti = 0; ti < t; ti++) {
                for (int ch = 0; ch < convDim; ch++) {
                    double s = convB.getDouble(ch);
                    for (int j = 0; j < k; j++) {
                        int src = ti - (k - 1) + j;
                        if (src >= 0) {
                            s += convW.getDouble(ch, 0, j) * zxbcdt[src][dInner + ch];
                        }
                    }
                    xbc[ti][ch] = silu(s);
                }
            }
            // steps 4–6 as arrays for the recurrence
            INDArray xs = Nd4j.create(DataType.DOUBLE, 1, t, nh, hp);
            INDArray bs = Nd4j.create(DataType.DOUBLE, 1, t, g, n);
            INDArray cs = Nd4j.create(DataType.DOUBLE, 1, t, g, n);
            INDArray dts = Nd4j.create(DataType.DOUBLE, 1, t, nh);
            INDArray as = Nd4j.create(DataType.DOUBLE, nh);
            for (int hh = 0; hh < nh; hh++) {
                as.putScalar(hh, -Math.exp(aLog.getDouble(hh)));
            }
            for (int ti = 0; ti < t; ti++) {
                for (int i = 0; i < dInner; i++) {
                    xs.putScalar(new long[]{0, ti, i / hp, i % hp}, xbc[ti][i]);
                }
                for (int i = 0; i < g * n; i++) {
                    bs.putScalar(new long[]{0, ti, i / n, i % n}, xbc[ti][dInner + i]);
                    cs.putScalar(new long[]{0, ti, i / n, i % n}, xbc[ti][dInner + g * n + i]);
                }
                for (int hh = 0; hh < nh; hh++) {
                    double raw = zxbcdt[ti][dInner + convDim + hh] + dtBias.getDouble(hh);
                    dts.putScalar(new long[]{0, ti, hh}, Math.log1p(Math.exp(raw)));
                }
            }
            double[][][][] y = recurrence(xs, dts, as, bs, cs);
            for (int ti = 0; ti < t; ti++) {
                // step 7 D skip, step 8 gated group RMSNorm, step 9 out_proj
                double[] gated = new double[dInner];
                for (int i = 0; i < dInner; i++) {
                    int hh = i / hp;
                    double yi = y[0][ti][hh][i % hp] + dSkip.getDouble(hh) * xbc[ti][i];
                    gated[i] = yi * silu(zxbcdt[ti][i]);
                }
                int groupSize = dInner / g;
                double[] normed = new double[dInner];
                for (int gi = 0; gi < g; gi++) {
                    double[] part = new double[groupSize];
                    System.arraycopy(gated, gi * groupSize, part, 0, groupSize);
                    double[] np = rmsNorm(part, eps);
                    for (int j = 0; j < groupSize; j++) {
                        normed[gi * groupSize + j] = np[j] * gNormW.getDouble(gi * groupSize + j);
                    }
                }
                for (int f = 0; f < h; f++) {
                    double s = 0;
                    for (int i = 0; i < dInner; i++) {
                        s += wOut.getDouble(f, i) * normed[i];
                    }
                    result[b][f][ti] = xIn[ti][f] + s;
                }
            }
        }
        return result;
    }

    private static double[] rmsNorm(double[] v, double eps) {
        double ms = 0;
        for (double x : v) {
            ms += x * x;
        }
        ms /= v.length;
        double scale = 1.0 / Math.sqrt(ms + eps);
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i] * scale;
        }
        return out;
    }

    private static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }
}
