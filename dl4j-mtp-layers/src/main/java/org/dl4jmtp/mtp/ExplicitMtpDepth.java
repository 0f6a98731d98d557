package org.dl4jmtp.mtp;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.dl4jmtp.block.RowBlock;
import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.RowForwardLayer;
import org.dl4jmtp.layers.RowMixer;
import org.dl4jmtp.layers.rows.ColumnSums;
import org.dl4jmtp.layers.rows.RowRmsNorm;
import org.dl4jmtp.layers.rows.TokenRows;
import org.dl4jmtp.moe.ExpertCounts;
import org.dl4jmtp.moe.ExpertLoadSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runtime of {@link MtpDepthLayer}: the fusion {@code eh_proj([enorm(emb) ; hnorm(h)])}, the sublayer blocks
 * ({@link RowBlock}) and {@code final_layernorm}, applied once per iteration, on token rows with an explicit
 * backprop. For the weight-tied ("repeated") depth every iteration uses the same parameters, so their gradients are the
 * sums over the iterations; the gradient of each iteration's hidden input flows into the iteration before it.
 *
 * <p>As {@link ExplicitBlock}, backprop reuses the training forward pass ({@link RowForwardLayer}).
 */
public final class ExplicitMtpDepth extends RowForwardLayer<ExplicitMtpDepth.DepthForward> implements ExpertLoadSource {

    /** What backprop needs from one iteration. */
    private static final class Iteration {
        RowRmsNorm embeddingNorm;
        RowRmsNorm hiddenNorm;
        INDArray fused;                                   // [n, 2H] eh_proj's input
        final List<RowBlock.Forward> blocks = new ArrayList<>();
        RowRmsNorm finalNorm;
    }

    /** What backprop needs from one forward pass; the output rows are [n, k·H]. */
    static final class DepthForward extends RowForwardLayer.Forward {
        final List<Iteration> iterations = new ArrayList<>();
    }

    private final ExpertCounts expertCounts = new ExpertCounts();

    public ExplicitMtpDepth(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** Counts every iteration's routing: a weight-tied depth's MoE sublayer sums its D uses. */
    @Override
    protected void observe(DepthForward forward) {
        for (Iteration iteration : forward.iterations) {
            for (int sub = 0; sub < iteration.blocks.size(); sub++) {
                expertCounts.add(MtpDepthLayer.sublayerPrefix(sub), iteration.blocks.get(sub).routing());
            }
        }
    }

    @Override
    public Map<String, long[]> drainExpertCounts() {
        return expertCounts.drain();
    }

    private MtpDepthLayer depth() {
        return (MtpDepthLayer) layerConf();
    }

    @Override
    protected DepthForward forwardRows(INDArray input, RowMixer.Cache cache) {
        MtpDepthLayer depth = depth();
        int h = depth.getHiddenSize();
        double eps = depth.getLayerNormEpsilon();
        int batch = (int) input.size(0);
        String first = MtpDepthLayer.sublayerPrefix(0);
        String last = MtpDepthLayer.sublayerPrefix(depth.getSublayers().size() - 1);

        INDArray rows = TokenRows.of(input);                                            // [n, (1+k)·H]
        DepthForward f = new DepthForward();
        f.output = Nd4j.createUninitialized(rows.dataType(), rows.size(0), (long) depth.getIterations() * h);
        INDArray hidden = columns(rows, 0, h);
        Documents documents = documents(input);
        for (int it = 0; it < depth.getIterations(); it++) {
            Iteration step = new Iteration();
            step.embeddingNorm = RowRmsNorm.of(columns(rows, (1 + it) * h, h), eps, cache);
            step.hiddenNorm = RowRmsNorm.of(hidden, eps, cache);
            step.fused = cache.createUninitialized(rows.dataType(), rows.size(0), 2L * h);
            columns(step.fused, 0, h).assign(step.embeddingNorm.normalized).muliRowVector(getParam(first + MtpDepthLayer.ENORM));
            columns(step.fused, h, h).assign(step.hiddenNorm.normalized).muliRowVector(getParam(first + MtpDepthLayer.HNORM));
            INDArray u = Nd4j.gemm(step.fused, getParam(first + MtpDepthLayer.EH_PROJ), false, true);   // [n, H]
            for (int sub = 0; sub < depth.getSublayers().size(); sub++) {
                step.blocks.add(block(sub).forwardInPlace(u, batch, documents, cache));
            }
            step.finalNorm = RowRmsNorm.of(u, eps, cache);
            hidden = columns(f.output, it * h, h).assign(step.finalNorm.normalized)
                    .muliRowVector(getParam(last + MtpDepthLayer.FINAL_LAYERNORM));
            f.iterations.add(step);
        }
        return f;
    }

    /** Writes the parameter gradients (sums over the iterations) into {@code gradTable}; returns dL/d(input rows). */
    @Override
    protected INDArray backwardRows(DepthForward f, INDArray gradOut) {
        MtpDepthLayer depth = depth();
        int h = depth.getHiddenSize();
        int subs = depth.getSublayers().size();
        String first = MtpDepthLayer.sublayerPrefix(0);
        String last = MtpDepthLayer.sublayerPrefix(subs - 1);
        gradTable.values().forEach(g -> g.assign(0));
        // the blocks write (not add) their gradients, all of their keys each time: each iteration's go to scratch
        // arrays, then into the sums (the fusion and final-norm gradients are added directly)
        Set<String> direct = Set.of(first + MtpDepthLayer.ENORM, first + MtpDepthLayer.HNORM,
                first + MtpDepthLayer.EH_PROJ, last + MtpDepthLayer.FINAL_LAYERNORM);
        Map<String, INDArray> scratch = new LinkedHashMap<>();
        gradTable.forEach((key, g) -> {
            if (!direct.contains(key)) {
                scratch.put(key, Nd4j.createUninitialized(g.dataType(), g.shape()));
            }
        });

        INDArray gradInput = Nd4j.zeros(gradOut.dataType(), gradOut.size(0), (long) (1 + depth.getIterations()) * h);
        INDArray gradHidden = null;                     // dL/d(hidden input of the iteration after this one)
        for (int it = depth.getIterations() - 1; it >= 0; it--) {
            Iteration step = f.iterations.get(it);
            INDArray gradH = columns(gradOut, it * h, h).dup();
            if (gradHidden != null) {
                gradH.addi(gradHidden);
            }
            INDArray finalWeight = getParam(last + MtpDepthLayer.FINAL_LAYERNORM);
            gradTable.get(last + MtpDepthLayer.FINAL_LAYERNORM).addi(ColumnSums.of(gradH.mul(step.finalNorm.normalized)));
            INDArray gradU = step.finalNorm.backward(gradH.mulRowVector(finalWeight));
            for (int sub = subs - 1; sub >= 0; sub--) {
                gradU = block(sub).backward(step.blocks.get(sub), gradU, scratch);
            }
            scratch.forEach((key, g) -> gradTable.get(key).addi(g));

            // u = fused·Wᵀ, fused = [enorm(emb)·g_e ; hnorm(h)·g_h]
            Nd4j.gemm(gradU, step.fused, gradTable.get(first + MtpDepthLayer.EH_PROJ), true, false, 1.0, 1.0);
            INDArray gradFused = Nd4j.gemm(gradU, getParam(first + MtpDepthLayer.EH_PROJ), false, false);  // [n, 2H]
            INDArray gradE = columns(gradFused, 0, h);
            INDArray gradHn = columns(gradFused, h, h);
            gradTable.get(first + MtpDepthLayer.ENORM).addi(ColumnSums.of(gradE.mul(step.embeddingNorm.normalized)));
            gradTable.get(first + MtpDepthLayer.HNORM).addi(ColumnSums.of(gradHn.mul(step.hiddenNorm.normalized)));
            columns(gradInput, (1 + it) * h, h).assign(
                    step.embeddingNorm.backward(gradE.mulRowVector(getParam(first + MtpDepthLayer.ENORM))));
            gradHidden = step.hiddenNorm.backward(gradHn.mulRowVector(getParam(first + MtpDepthLayer.HNORM)));
        }
        columns(gradInput, 0, h).assign(gradHidden);
        return gradInput;
    }

    private RowBlock block(int sub) {
        return new RowBlock(depth().getSublayers().get(sub), paramTable, MtpDepthLayer.sublayerPrefix(sub));
    }

    /** Columns [from, from + width) of {@code rows} (a view). */
    private static INDArray columns(INDArray rows, long from, long width) {
        return rows.get(NDArrayIndex.all(), NDArrayIndex.interval(from, from + width));
    }
}
