package org.dl4jmtp.layers;

import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.LossLayer;
import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.deeplearning4j.nn.conf.layers.samediff.SameDiffLayer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.nd4j.autodiff.loss.LossReduce;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.validation.GradCheckUtil;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;

import java.util.Arrays;
import java.util.Collections;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One test per M2.1 workaround in {@link M21Workarounds}. Each test asserts BOTH that the DL4J/ND4J bug is still
 * present (so that an upgrade which fixes it fails here and the workaround gets reviewed) AND that the workaround
 * gives the right values and gradients. Gradient checks use ND4J's {@link GradCheckUtil} in double precision with
 * the harness {@code loss = sum(op(x) ∘ R)} for a fixed random R (docs/dl4j-m21.md).
 */
@ExtendWith(DoublePrecisionSingleThread.class)
class M21WorkaroundsTest {

    private static final double EPS = 1e-6;
    private static final double MAX_REL = 1e-5;
    private static final double MIN_ABS = 1e-8;


    // =====================================================================================================
    // B1: doubled gradients of SameDiffLayer

    /**
     * y = x ⊙ w (w a [1, n] parameter), optionally with {@link M21Workarounds#fixDoubledGradient}; feed-forward
     * [mb, n] → [mb, n]. Test-local, public with bean accessors so DL4J can clone it.
     */
    public static class ScaleLayer extends SameDiffLayer {
        private long size;
        private boolean fix;
        private double init;

        protected ScaleLayer() {
        }

        ScaleLayer(long size, boolean fix, double init) {
            this.size = size;
            this.fix = fix;
            this.init = init;
        }

        public long getSize() {
            return size;
        }

        public void setSize(long size) {
            this.size = size;
        }

        public boolean isFix() {
            return fix;
        }

        public void setFix(boolean fix) {
            this.fix = fix;
        }

        public double getInit() {
            return init;
        }

        public void setInit(double init) {
            this.init = init;
        }

        @Override
        public void defineParameters(SDLayerParams params) {
            params.addWeightParam("w", 1, size);
        }

        @Override
        public void initializeParameters(Map<String, INDArray> params) {
            INDArray w = params.get("w");
            for (int i = 0; i < size; i++) {
                w.putScalar(0, i, init + 0.25 * i);
            }
        }

        @Override
        public SDVariable defineLayer(SameDiff sd, SDVariable input, Map<String, SDVariable> params, SDVariable mask) {
            SDVariable out = input.mul(params.get("w"));
            return fix ? M21Workarounds.fixDoubledGradient(sd, out) : out;
        }

        @Override
        public InputType getOutputType(int layerIndex, InputType inputType) {
            return InputType.feedForward(size);
        }
    }

    /**
     * Two ScaleLayers (w0, w1) then MSE. Returns {ratio of layer 0's w gradient, ratio of layer 1's w gradient} to
     * the analytic ones, where DL4J's MSE is Σ (y−l)²/n per example and the network gradient is the minibatch SUM
     * (the division by mb happens in the updater).
     */
    private static double[] scaleNetGradientRatios(boolean fix) {
        int n = 3;
        int mb = 4;
        MultiLayerConfiguration conf = new NeuralNetConfiguration.Builder()
                .dataType(DataType.DOUBLE)
                .updater(new NoOp())
                .list()
                .layer(new ScaleLayer(n, fix, 0.5))
                .layer(new ScaleLayer(n, fix, -0.75))
                .layer(new LossLayer.Builder(LossFunctions.LossFunction.MSE).activation(Activation.IDENTITY).build())
                .setInputType(InputType.feedForward(n))
                .build();
        MultiLayerNetwork net = new MultiLayerNetwork(conf);
        net.init();

        Random rng = new Random(7);
        double[][] x = new double[mb][n];
        double[][] l = new double[mb][n];
        for (int b = 0; b < mb; b++) {
            for (int i = 0; i < n; i++) {
                x[b][i] = rng.nextGaussian();
                l[b][i] = rng.nextGaussian();
            }
        }
        net.setInput(Nd4j.createFromArray(x));
        net.setLabels(Nd4j.createFromArray(l));
        net.computeGradientAndScore();
        INDArray g0 = net.gradient().getGradientFor("0_w");
        INDArray g1 = net.gradient().getGradientFor("1_w");
        INDArray w0 = net.getParam("0_w");
        INDArray w1 = net.getParam("1_w");

        double[] ratio0 = new double[n];
        double[] ratio1 = new double[n];
        for (int i = 0; i < n; i++) {
            double a0 = 0;
            double a1 = 0;
            for (int b = 0; b < mb; b++) {
                double h = x[b][i] * w0.getDouble(0, i);
                double y = h * w1.getDouble(0, i);
                double dy = 2 * (y - l[b][i]) / n;
                a1 += dy * h;
                a0 += dy * w1.getDouble(0, i) * x[b][i];
            }
            ratio0[i] = g0.getDouble(i) / a0;
            ratio1[i] = g1.getDouble(i) / a1;
        }
        // every element has the same ratio
        for (int i = 1; i < n; i++) {
            assertEquals(ratio0[0], ratio0[i], 1e-9, "layer 0 ratios " + Arrays.toString(ratio0));
            assertEquals(ratio1[0], ratio1[i], 1e-9, "layer 1 ratios " + Arrays.toString(ratio1));
        }
        return new double[]{ratio0[0], ratio1[0]};
    }

    @Test
    void b1SameDiffLayerGradientIsDoubledWithoutFix() {
        double[] ratios = scaleNetGradientRatios(false);
        // The last SameDiffLayer's parameter gradient is 2x; the first one's is 4x, because its dL/dOutput is the
        // next layer's (also doubled) input gradient: both the parameter and the input gradient are doubled.
        assertEquals(2.0, ratios[1], 1e-9, "B1 fixed upstream? last SameDiffLayer param gradient ratio");
        assertEquals(4.0, ratios[0], 1e-9, "B1 fixed upstream? first SameDiffLayer param gradient ratio");
    }

    @Test
    void b1FixDoubledGradientGivesExactGradient() {
        double[] ratios = scaleNetGradientRatios(true);
        assertEquals(1.0, ratios[1], 1e-9);
        assertEquals(1.0, ratios[0], 1e-9);
    }

    @Test
    void b1FixDoubledGradientKeepsForwardValue() {
        SameDiff sd = SameDiff.create();
        INDArray xv = randn(11, 3, 4);
        SDVariable x = sd.var("x", xv.dup());
        SDVariable fixed = M21Workarounds.fixDoubledGradient(sd, x.mul(2.0));
        assertEquals(xv.mul(2.0), fixed.eval());
    }

    // =====================================================================================================
    // B6: cross-entropy ops ignore the upstream gradient

    @Test
    void b6SparseSoftmaxCrossEntropyIgnoresUpstreamScale() {
        INDArray logits = randn(21, 4, 5);
        int[] labels = {1, 4, 0, 2};
        INDArray plain = logitsGradient(logits, 1.0, sd -> sd.loss().sparseSoftmaxCrossEntropy(
                sd.getVariable("logits"), sd.constant(Nd4j.createFromArray(labels))));
        INDArray scaled = logitsGradient(logits, 0.1, sd -> sd.loss().sparseSoftmaxCrossEntropy(
                sd.getVariable("logits"), sd.constant(Nd4j.createFromArray(labels))));
        // the bug: d(0.1·CE)/dlogits == d(CE)/dlogits
        assertArrayEquals(vals(plain), vals(scaled), 1e-12,
                "B6 fixed upstream? sparseSoftmaxCrossEntropy now honours the upstream gradient");
        // and that (ignored-scale) gradient is the one of the unscaled CE: softmax - onehot
        assertArrayEquals(vals(ceGradient(logits, labels, 1.0)), vals(plain), 1e-12);
    }

    @Test
    void b6SoftmaxCrossEntropyIgnoresUpstreamScale() {
        INDArray logits = randn(22, 4, 5);
        int[] labels = {3, 0, 0, 4};
        INDArray oneHot = oneHot(labels, 5);
        INDArray plain = logitsGradient(logits, 1.0, sd -> sd.loss().softmaxCrossEntropy(sd.constant(oneHot),
                sd.getVariable("logits"), null, LossReduce.NONE, 0.0));
        INDArray scaled = logitsGradient(logits, 0.1, sd -> sd.loss().softmaxCrossEntropy(sd.constant(oneHot),
                sd.getVariable("logits"), null, LossReduce.NONE, 0.0));
        assertArrayEquals(vals(plain), vals(scaled), 1e-12,
                "B6 fixed upstream? softmaxCrossEntropy now honours the upstream gradient");
        assertArrayEquals(vals(ceGradient(logits, labels, 1.0)), vals(plain), 1e-12);
    }

    @Test
    void b6CrossEntropyPerRowHonoursScaleAndIgnoresRows() {
        INDArray logits = randn(23, 5, 6);
        int[] labels = {2, -100, 5, 0, -100};
        double[] targets = Arrays.stream(labels).asDoubleStream().toArray();

        // value: hand-computed -log softmax(logits)[label], 0 for ignored rows
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("logits", logits.dup());
        SDVariable perRow = M21Workarounds.crossEntropyPerRow(sd, x, sd.constant(Nd4j.createFromArray(targets)), 6);
        INDArray values = perRow.eval();
        assertArrayEquals(new long[]{5}, values.shape());
        for (int r = 0; r < labels.length; r++) {
            double expected = labels[r] < 0 ? 0.0 : -logSoftmax(logits, r)[labels[r]];
            assertEquals(expected, values.getDouble(r), 1e-12, "row " + r);
        }

        // gradient: 0.1·(softmax − onehot) on valid rows, exactly 0 on ignored rows
        INDArray grad = logitsGradient(logits, 0.1, s -> M21Workarounds.crossEntropyPerRow(s, s.getVariable("logits"),
                s.constant(Nd4j.createFromArray(targets)), 6));
        INDArray expected = ceGradient(logits, labels, 0.1);
        assertArrayEquals(vals(expected), vals(grad), 1e-12);
        for (int r : new int[]{1, 4}) {
            for (int c = 0; c < 6; c++) {
                assertEquals(0.0, grad.getDouble(r, c), 0.0);
            }
        }

        // and it passes a numerical gradient check with the ×0.1 and a random weighting of the rows
        SameDiff check = SameDiff.create();
        SDVariable v = check.var("logits", logits.dup());
        SDVariable ce = M21Workarounds.crossEntropyPerRow(check, v, check.constant(Nd4j.createFromArray(targets)), 6);
        SDVariable loss = ce.mul(check.constant(randn(24, 5))).mul(0.1).sum();
        check.setLossVariables(loss.name());
        assertTrue(gradCheck(check));
    }

    /** d(scale·Σ rows)/dlogits of a per-row CE built by {@code ce} on a var "logits". */
    private static INDArray logitsGradient(INDArray logits, double scale,
                                           java.util.function.Function<SameDiff, SDVariable> ce) {
        SameDiff sd = SameDiff.create();
        sd.var("logits", logits.dup());
        SDVariable perRow = ce.apply(sd);
        SDVariable loss = perRow.mul(scale).sum();
        sd.setLossVariables(loss.name());  // only the scaled sum: the CE op marks itself as a loss too
        return sd.calculateGradients(Collections.emptyMap(), "logits").get("logits");
    }

    /** scale·(softmax(logits) − onehot(label)) per row, zero rows for negative labels. */
    private static INDArray ceGradient(INDArray logits, int[] labels, double scale) {
        INDArray g = Nd4j.zeros(DataType.DOUBLE, logits.shape());
        for (int r = 0; r < labels.length; r++) {
            if (labels[r] < 0) {
                continue;
            }
            double[] lp = logSoftmax(logits, r);
            for (int c = 0; c < lp.length; c++) {
                g.putScalar(r, c, scale * (Math.exp(lp[c]) - (c == labels[r] ? 1 : 0)));
            }
        }
        return g;
    }

    private static double[] logSoftmax(INDArray logits, int row) {
        int v = (int) logits.size(1);
        double max = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < v; c++) {
            max = Math.max(max, logits.getDouble(row, c));
        }
        double sum = 0;
        for (int c = 0; c < v; c++) {
            sum += Math.exp(logits.getDouble(row, c) - max);
        }
        double[] out = new double[v];
        for (int c = 0; c < v; c++) {
            out[c] = logits.getDouble(row, c) - max - Math.log(sum);
        }
        return out;
    }

    // =====================================================================================================
    // B5: topK returns k = 1

    @Test
    void b5TopKReturnsOnlyOneColumn() {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", randn(31, 4, 6));
        SDVariable[] top = sd.nn().topK(x, 3, true);
        Map<String, INDArray> out = sd.output(Collections.emptyMap(), top[0].name(), top[1].name());
        // the bug: (sorted, k) passed where libnd4j reads (k, sorted) -> k = 1
        assertEquals(1, out.get(top[0].name()).size(1), "B5 fixed upstream? topK values now have k columns");
        assertEquals(1, out.get(top[1].name()).size(1), "B5 fixed upstream? topK indices now have k columns");
    }

    @Test
    void b5TopKMaskSelectsExactlyKLargest() {
        int rows = 7;
        int cols = 6;
        INDArray scores = randn(32, rows, cols);
        for (int k = 1; k <= cols; k++) {
            SameDiff sd = SameDiff.create();
            SDVariable s = sd.var("s", scores.dup());
            INDArray mask = M21Workarounds.topKMask(sd, s, k, cols).eval();
            assertArrayEquals(new long[]{rows, cols}, mask.shape());
            for (int r = 0; r < rows; r++) {
                Integer[] order = new Integer[cols];
                for (int c = 0; c < cols; c++) {
                    order[c] = c;
                }
                final int row = r;
                Arrays.sort(order, (a, b) -> Double.compare(scores.getDouble(row, b), scores.getDouble(row, a)));
                double[] expected = new double[cols];
                for (int i = 0; i < k; i++) {
                    expected[order[i]] = 1.0;
                }
                assertArrayEquals(expected, mask.getRow(r).toDoubleVector(), 0.0, "k=" + k + " row " + r);
            }
        }
    }

    @Test
    void b5TopKMaskTiesAndGradient() {
        // ties: lowest index first
        SameDiff sd = SameDiff.create();
        SDVariable s = sd.var("s", Nd4j.createFromArray(new double[][]{{0.5, 0.7, 0.7, 0.1}, {0.2, 0.2, 0.2, 0.2}}));
        assertArrayEquals(new double[]{0, 1, 1, 0, 1, 1, 0, 0},
                vals(M21Workarounds.topKMask(sd, s, 2, 4).eval()), 0.0);

        // the mask is a constant in backprop: d/ds Σ mask(s)·s·R = mask·R
        INDArray sv = randn(33, 3, 5);
        INDArray r = randn(34, 3, 5);
        SameDiff g = SameDiff.create();
        SDVariable sg = g.var("s", sv.dup());
        SDVariable mask = M21Workarounds.topKMask(g, sg, 2, 5);
        SDVariable loss = mask.mul(sg).mul(g.constant(r)).sum();
        g.setLossVariables(loss.name());
        INDArray grad = g.calculateGradients(Collections.emptyMap(), "s").get("s");
        INDArray maskValue = mask.eval();
        assertArrayEquals(vals(maskValue.mul(r)), vals(grad), 1e-12);
    }

    // =====================================================================================================
    // B4: cumsum gradient on axis != 0

    @Test
    void b4CumsumGradientOnAxis1IsWrong() {
        INDArray xv = randn(41, 3, 5);
        INDArray r = randn(42, 3, 5);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", xv.dup());
        SDVariable cum = sd.cumsum(x, false, false, 1);
        SDVariable loss = cum.mul(sd.constant(r)).sum();
        sd.setLossVariables(loss.name());
        // the forward pass is right ...
        assertArrayEquals(vals(cumsumRows(xv)), vals(cum.eval()), 1e-12);
        INDArray grad = sd.calculateGradients(Collections.emptyMap(), "x").get("x");
        INDArray expected = reverseCumsumRows(r);
        // ... the gradient is not (it leaks across rows)
        assertFalse(allClose(expected, grad, 1e-6), "B4 fixed upstream? cumsum(axis=1) gradient is now right: " + grad);
        assertFalse(gradCheck(sd), "B4 fixed upstream? cumsum(axis=1) now passes GradCheckUtil");
    }

    @Test
    void b4CumsumAlongAxisIsCorrect() {
        INDArray xv = randn(43, 3, 5);
        INDArray r = randn(44, 3, 5);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", xv.dup());
        SDVariable cum = M21Workarounds.cumsumAlongAxis(sd, x, 1, 2);
        SDVariable loss = cum.mul(sd.constant(r)).sum();
        sd.setLossVariables(loss.name());
        assertArrayEquals(vals(cumsumRows(xv)), vals(cum.eval()), 1e-12);
        INDArray grad = sd.calculateGradients(Collections.emptyMap(), "x").get("x");
        assertArrayEquals(vals(reverseCumsumRows(r)), vals(grad), 1e-12);
        assertTrue(gradCheck(sd));
    }

    @Test
    void b4CumsumAlongLastAxisOfRank3PassesGradCheck() {
        // the case SsdScan uses: [B, nh, Z], axis 2
        INDArray xv = randn(45, 2, 3, 4);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", xv.dup());
        SDVariable cum = M21Workarounds.cumsumAlongAxis(sd, x, 2, 3);
        INDArray value = cum.eval();
        for (int a = 0; a < 2; a++) {
            for (int b = 0; b < 3; b++) {
                double s = 0;
                for (int c = 0; c < 4; c++) {
                    s += xv.getDouble(a, b, c);
                    assertEquals(s, value.getDouble(a, b, c), 1e-12);
                }
            }
        }
        SDVariable loss = cum.mul(sd.constant(randn(46, 2, 3, 4))).sum();
        sd.setLossVariables(loss.name());
        assertTrue(gradCheck(sd));
    }

    private static INDArray cumsumRows(INDArray x) {
        INDArray out = Nd4j.zeros(DataType.DOUBLE, x.shape());
        for (int i = 0; i < x.size(0); i++) {
            double s = 0;
            for (int j = 0; j < x.size(1); j++) {
                s += x.getDouble(i, j);
                out.putScalar(i, j, s);
            }
        }
        return out;
    }

    /** d/dx Σ cumsum(x, axis 1)∘R = Σ_{k ≥ j} R[i, k]. */
    private static INDArray reverseCumsumRows(INDArray r) {
        INDArray out = Nd4j.zeros(DataType.DOUBLE, r.shape());
        for (int i = 0; i < r.size(0); i++) {
            double s = 0;
            for (int j = (int) r.size(1) - 1; j >= 0; j--) {
                s += r.getDouble(i, j);
                out.putScalar(i, j, s);
            }
        }
        return out;
    }

    // =====================================================================================================
    // B3: keepDims reductions with a negative axis

    @Test
    void b3NegativeAxisKeepDimsReductionIsWrong() {
        INDArray xv = randn(51, 2, 3, 4);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", xv.dup());
        SDVariable meanNeg = x.mean(true, -1);
        SDVariable meanPos = x.mean(true, 2);
        SDVariable sumNeg = x.sum(true, -1);
        Map<String, INDArray> out = sd.output(Collections.emptyMap(), meanNeg.name(), meanPos.name(), sumNeg.name());
        INDArray expectedMean = xv.mean(true, 2);
        // shape right, values wrong (rank 3; on this build rank 2 with axis -1 happens to be right)
        assertArrayEquals(new long[]{2, 3, 1}, out.get(meanNeg.name()).shape());
        assertFalse(allClose(expectedMean, out.get(meanNeg.name()), 1e-9),
                "B3 fixed upstream? mean(keepDims, -1) on rank 3 is now right");
        assertFalse(allClose(xv.sum(true, 2), out.get(sumNeg.name()), 1e-9),
                "B3 fixed upstream? sum(keepDims, -1) on rank 3 is now right");
        // with the positive axis it is right
        assertTrue(allClose(expectedMean, out.get(meanPos.name()), 1e-12));
    }

    @Test
    void b3PositiveAxisHelpersAreCorrect() {
        for (long[] shape : new long[][]{{5, 4}, {2, 3, 4}, {2, 3, 2, 5}}) {
            int rank = shape.length;
            INDArray xv = randn(52 + rank, shape);
            SameDiff sd = SameDiff.create();
            SDVariable x = sd.var("x", xv.dup());
            SDVariable mean = M21Workarounds.meanLastAxisKeepDims(x, rank);
            SDVariable sum = M21Workarounds.sumLastAxisKeepDims(x, rank);
            Map<String, INDArray> out = sd.output(Collections.emptyMap(), mean.name(), sum.name());
            assertEquals(xv.mean(true, rank - 1), out.get(mean.name()), Arrays.toString(shape));
            assertEquals(xv.sum(true, rank - 1), out.get(sum.name()), Arrays.toString(shape));
            SDVariable loss = mean.mul(sd.constant(randn(60 + rank, out.get(mean.name()).shape()))).sum()
                    .add(sum.mul(sd.constant(randn(70 + rank, out.get(sum.name()).shape()))).sum());
            sd.setLossVariables(loss.name());
            assertTrue(gradCheck(sd), Arrays.toString(shape));
        }
    }

    // =====================================================================================================
    // mmul 3-D × 2-D

    @Test
    void mmul3dBy2dThrows() {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", randn(61, 2, 3, 4));
        SDVariable w = sd.var("w", randn(62, 4, 5));
        SDVariable y = sd.mmul(x, w);
        // "ShapeUtils::evalShapeForMatmul: the ranks of arrays must be the same"
        assertThrows(RuntimeException.class, y::eval, "3-D x 2-D mmul fixed upstream? linear3d may be simplified");
    }

    @Test
    void linear3dMatchesReferenceAndPassesGradCheck() {
        long batch = 2;
        long time = 3;
        long in = 4;
        long out = 5;
        INDArray xv = randn(63, batch, time, in);
        INDArray wv = randn(64, out, in);                    // nn.Linear layout [out, in]
        INDArray reference = xv.reshape(batch * time, in).mmul(wv.transpose()).reshape(batch, time, out);

        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", xv.dup());
        SDVariable w = sd.var("w", wv.dup());
        SDVariable y = M21Workarounds.linear3d(sd, x, w, in, out);
        INDArray value = y.eval();
        assertArrayEquals(new long[]{batch, time, out}, value.shape());
        assertTrue(allClose(reference, value, 1e-12));

        SDVariable loss = y.mul(sd.constant(randn(65, batch, time, out))).sum();
        sd.setLossVariables(loss.name());
        assertTrue(gradCheck(sd));
    }

    @Test
    void linear3dHasDynamicLeadingAxes() {
        long in = 4;
        long out = 3;
        INDArray wv = randn(66, out, in);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, -1, in);
        SDVariable y = M21Workarounds.linear3d(sd, x, sd.var("w", wv.dup()), in, out);
        for (long[] bt : new long[][]{{1, 1}, {2, 5}, {3, 2}}) {
            INDArray xv = randn(67, bt[0], bt[1], in);
            INDArray value = sd.output(Collections.singletonMap("x", xv), y.name()).get(y.name());
            INDArray reference = xv.reshape(bt[0] * bt[1], in).mmul(wv.transpose()).reshape(bt[0], bt[1], out);
            assertTrue(allClose(reference, value, 1e-12), Arrays.toString(bt));
        }
    }

    // =====================================================================================================

    private static boolean gradCheck(SameDiff sd) {
        return GradCheckUtil.checkGradients(sd, Collections.emptyMap(), EPS, MAX_REL, MIN_ABS, false, false);
    }

    private static INDArray randn(long seed, long... shape) {
        Nd4j.getRandom().setSeed(seed);
        return Nd4j.randn(DataType.DOUBLE, shape);
    }

    private static INDArray oneHot(int[] labels, int classes) {
        INDArray out = Nd4j.zeros(DataType.DOUBLE, labels.length, classes);
        for (int r = 0; r < labels.length; r++) {
            out.putScalar(r, labels[r], 1.0);
        }
        return out;
    }

    private static double[] vals(INDArray a) {
        return a.dup('c').data().asDouble();
    }

    private static boolean allClose(INDArray expected, INDArray actual, double tol) {
        if (!Arrays.equals(expected.shape(), actual.shape())) {
            return false;
        }

        double[] a = vals(actual);
        double[] ec = vals(expected);
        for (int i = 0; i < ec.length; i++) {
            if (Math.abs(ec[i] - a[i]) > tol * Math.max(1.0, Math.abs(ec[i]))) {
                return false;
            }
        }
        return true;
    }
}
