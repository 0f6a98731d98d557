package org.dl4jmtp.mamba2;

import org.dl4jmtp.attention.TriangularMask;
import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.RowMixer;
import org.dl4jmtp.layers.rows.ColumnSums;
import org.dl4jmtp.layers.rows.RowRmsNorm;
import org.dl4jmtp.layers.rows.StackedMatmul;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastAddOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.transforms.custom.CumSum;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Sigmoid;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Map;

/**
 * The Mamba2 mixer (docs/model.md, "Mamba2"; same math as {@link Mamba2Mixer} and its chunked SSD scan {@code SsdScan})
 * on token
 * rows with a explicit backprop. The scan works on [B·Z, nh, Q, ·] chunks (T zero-padded to Z·Q, padded steps
 * have dt = 0): the intra-chunk term and the chunk states are batched matmuls, the inter-chunk recurrence one masked
 * [Z, Z] decay matrix per sequence and head.
 */
public final class ChunkedMamba2 extends RowMixer<ChunkedMamba2.Forward> {

    /** Added (negated) to masked exponents so that exp() underflows to exactly 0. */
    private static final double MASKED_EXPONENT = 1e30;

    /** What backprop needs from one forward pass. */
    public static final class Forward {
        INDArray input;       // [n, H]
        int batch;
        int time;
        INDArray gate;        // [n, dI] z
        INDArray convInput;   // [B, T+K-1, C] left-padded xBC
        INDArray convOutput;  // [B, T, C] before SiLU
        INDArray convSigmoid; // σ(convOutput), for SiLU and its derivative
        INDArray gateSigmoid; // σ(gate)
        INDArray dtPre;       // [n, nh] dt_raw + dt_bias
        INDArray dt;          // [n, nh]
        INDArray x;           // [n, nh·P] post-conv x
        Scan scan;
        INDArray y;           // [n, dI] scan output + D skip
        RowRmsNorm norm;      // the gated group norm over [n·G, dI/G] rows, before its weight
        INDArray normed;      // [n, dI] after the norm weight
        INDArray[] convMasks; // per tap, [B·(T+K-1) - (K-1), 1]: 1 where the tap reads the same document (null: one per row)
    }

    /** The chunked scan's forward state, [B·Z, nh, Q, ·] unless noted. */
    public static final class Scan {
        INDArray xbar;        // [BZ, nh, Q, P] dt·x
        INDArray dt;          // [BZ, nh, Q]
        INDArray b;           // [BZ, nh, Q, N] per head
        INDArray c;
        INDArray acum;        // [BZ, nh, Q]
        INDArray decay;       // [BZ, nh, Q, Q] exp(Acum_l - Acum_s), 0 above the diagonal
        INDArray scores;      // [BZ, nh, Q, Q] C_l·B_s
        INDArray toEnd;       // [BZ, nh, Q] exp(tot - Acum_s)
        INDArray states;      // [B, nh, Z, P·N] chunk states ΔS
        INDArray interDecay;  // [B, nh, Z, Z]
        INDArray entering;    // [BZ, nh, P, N] states entering each chunk
        INDArray offProduct;  // [BZ, nh, Q, P] C·Hᵀ before the exp(Acum) scale
        INDArray x;           // [BZ, nh, Q, P]
        INDArray output;      // [BZ, nh, Q, P] the scan's result (forward only, not kept)
        INDArray offMask;     // [BZ, Q]: 1 where position l is in the document of the state entering its chunk (null: one per row)
    }

    private final Mamba2Config config;

    public ChunkedMamba2(Mamba2Config config, Map<String, INDArray> params, String prefix) {
        super(params, prefix);
        this.config = config;
    }

    @Override
    public Result<Forward> forward(INDArray input, int batch, Cache cache) {
        return forward(input, batch, null, cache);
    }

    /**
     * The mixer within each document: the conv window and the SSM state restart at every document start. Each
     * cross-document term of the conv, of the intra-chunk decay, of the chunk states and of the inter-chunk
     * recurrence is multiplied by 0 (docs/model.md, "Packed documents").
     */
    @Override
    public Result<Forward> forward(INDArray input, int batch, Documents documents, Cache cache) {
        Forward f = new Forward();
        int n = (int) input.size(0);
        int time = n / batch;
        int dInner = config.dInner();
        int convDim = config.convDim();
        int nh = config.getMambaNumHeads();
        int groupState = config.getNGroups() * config.getSsmStateSize();
        f.input = input;
        f.batch = batch;
        f.time = time;

        INDArray zxbcdt = linear(input, Mamba2Mixer.IN_PROJ, Mamba2Mixer.IN_PROJ_BIAS);       // [n, inProj]
        f.gate = cache.copy(columns(zxbcdt, 0, dInner));
        f.dtPre = cache.copy(columns(zxbcdt, dInner + convDim, dInner + convDim + nh))
                .addiRowVector(param(Mamba2Mixer.DT_BIAS));
        f.dt = cache.keep(clampToTimeStepLimit(Transforms.softPlus(f.dtPre, true)));

        int k = config.getConvKernel();
        f.convInput = cache.createUninitialized(input.dataType(), batch, time + k - 1, convDim);
        f.convInput.get(NDArrayIndex.all(), NDArrayIndex.interval(0, k - 1), NDArrayIndex.all()).assign(0);
        f.convInput.get(NDArrayIndex.all(), NDArrayIndex.interval(k - 1, time + k - 1), NDArrayIndex.all())
                .assign(columns(zxbcdt, dInner, dInner + convDim).reshape(batch, time, convDim));
        f.convMasks = documents == null ? null : convMasks(documents, cache);
        f.convOutput = causalConv(f.convInput, time, f.convMasks, cache);
        f.convSigmoid = sigmoid(f.convOutput, cache);
        INDArray xbc = f.convOutput.mul(f.convSigmoid).reshape(n, convDim);                     // [n, C] SiLU
        f.x = cache.copy(columns(xbc, 0, dInner));
        INDArray b = columns(xbc, dInner, dInner + groupState);
        INDArray c = columns(xbc, dInner + groupState, convDim);

        f.scan = scan(f.x, f.dt, b, c, batch, time, documents, cache);
        INDArray y = scanOutput(f.scan, batch, time);                                           // [n, nh·P]
        y.addi(mulAlong(headsView(f.x), param(Mamba2Mixer.D), 1).reshape(n, dInner));
        f.y = cache.keep(y);
        int groups = config.getNGroups();
        f.gateSigmoid = sigmoid(f.gate, cache);
        INDArray grouped = y.mul(f.gate).muli(f.gateSigmoid).reshape((long) n * groups, dInner / groups); // ·silu(z)
        f.norm = RowRmsNorm.of(grouped, config.getLayerNormEpsilon(), cache);
        f.normed = mulAlong(f.norm.normalized.reshape(n, dInner), param(Mamba2Mixer.NORM), cache, 1);
        return new Result<>(linear(f.normed, Mamba2Mixer.OUT_PROJ, Mamba2Mixer.OUT_PROJ_BIAS), f);
    }

    @Override
    public INDArray backward(Forward f, INDArray gradOut, Map<String, INDArray> gradients) {
        int n = (int) f.input.size(0);
        int dInner = config.dInner();
        int convDim = config.convDim();
        int nh = config.getMambaNumHeads();
        int groups = config.getNGroups();
        int groupState = groups * config.getSsmStateSize();

        INDArray gradNormed = linearBackward(gradOut, f.normed, Mamba2Mixer.OUT_PROJ, Mamba2Mixer.OUT_PROJ_BIAS, gradients);
        // gated group RMSNorm: normed = x̂·w, x̂ the per-group normalised gated rows
        gradient(gradients, Mamba2Mixer.NORM).assign(ColumnSums.of(gradNormed.mul(f.norm.normalized.reshape(n, dInner))));
        INDArray gradGated = f.norm.backward(gradNormed.mulRowVector(param(Mamba2Mixer.NORM))
                .reshape((long) n * groups, dInner / groups)).reshape(n, dInner);
        // gated = y·silu(z)
        INDArray gradY = gradGated.mul(f.gate).muli(f.gateSigmoid);
        INDArray gradGate = gradGated.mul(f.y).muli(siluDerivative(f.gate, f.gateSigmoid));
        // D skip: y += D·x per head
        INDArray gradHeads = headsView(gradY);
        gradient(gradients, Mamba2Mixer.D).assign(ColumnSums.ofLeading(gradY.mul(f.x), dInner).reshape(nh, -1).sum(1));
        INDArray gradX = mulAlong(gradHeads, param(Mamba2Mixer.D), 1).reshape(n, dInner);

        INDArray[] scanGrads = scanBackward(f.scan, gradY, f.batch, f.time, gradients);         // dx, ddt, dB, dC
        gradX.addi(scanGrads[0]);
        INDArray gradDt = scanGrads[1];
        INDArray gradXbc = Nd4j.createUninitialized(gradOut.dataType(), n, convDim);
        columns(gradXbc, 0, dInner).assign(gradX);
        columns(gradXbc, dInner, dInner + groupState).assign(scanGrads[2]);
        columns(gradXbc, dInner + groupState, convDim).assign(scanGrads[3]);
        INDArray gradConvOut = gradXbc.reshape(f.batch, f.time, convDim).muli(siluDerivative(f.convOutput, f.convSigmoid));
        INDArray gradConvIn = causalConvBackward(f.convInput, gradConvOut, f.time, f.convMasks, gradients);

        // dt = softplus(dt_raw + dt_bias), clamped to time_step_limit
        INDArray gradDtPre = gradDt.muli(Transforms.sigmoid(f.dtPre, true)).muli(clampMask(f.dt));
        gradient(gradients, Mamba2Mixer.DT_BIAS).assign(ColumnSums.of(gradDtPre));

        INDArray gradZxbcdt = Nd4j.createUninitialized(gradOut.dataType(), n, config.inProjSize());
        columns(gradZxbcdt, 0, dInner).assign(gradGate);
        columns(gradZxbcdt, dInner, dInner + convDim).assign(
                gradConvIn.get(NDArrayIndex.all(), NDArrayIndex.interval(config.getConvKernel() - 1,
                        f.time + config.getConvKernel() - 1), NDArrayIndex.all()).reshape(n, convDim));
        columns(gradZxbcdt, dInner + convDim, dInner + convDim + nh).assign(gradDtPre);
        return linearBackward(gradZxbcdt, f.input, Mamba2Mixer.IN_PROJ, Mamba2Mixer.IN_PROJ_BIAS, gradients);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // chunked SSD scan

    private Scan scan(INDArray x, INDArray dt, INDArray b, INDArray c, int batch, int time, Documents documents,
                      Cache cache) {
        int nh = config.getMambaNumHeads();
        int p = config.getMambaHeadDim();
        int groups = config.getNGroups();
        int state = config.getSsmStateSize();
        int q = config.getChunkSize();
        int chunks = (time + q - 1) / q;
        long bz = (long) batch * chunks;
        Scan s = new Scan();

        s.x = chunked(x, batch, time, nh, p, cache);                                            // [BZ, nh, Q, P]
        s.dt = chunked(dt, batch, time, nh, 1, cache).reshape(bz, nh, q);
        s.b = perHead(chunked(b, batch, time, groups, state, cache), cache);                   // [BZ, nh, Q, N]
        s.c = perHead(chunked(c, batch, time, groups, state, cache), cache);
        s.xbar = mulAlong(s.x, s.dt, cache, 0, 1, 2);
        s.acum = cache.keep(cumsum(mulAlong(s.dt, negExpALog(), 1), 2, false));                          // cumsum of dt·A

        s.decay = pairwiseDifference(s.acum, s.acum, cache);                                    // [BZ, nh, Q, Q]
        INDArray aboveDiagonal = TriangularMask.fromDiagonal(q, 1, -MASKED_EXPONENT, s.decay.dataType());
        Nd4j.getExecutioner().exec(new BroadcastAddOp(s.decay, aboveDiagonal, s.decay, 2, 3));
        Transforms.exp(s.decay, false);                                       // exp(Acum_l − Acum_s), in place
        INDArray segments = documents == null ? null : documents.chunked(q);                     // [BZ, Q]
        if (segments != null) {
            INDArray sameDocument = Documents.pairwiseEqual(segments, segments);                 // [BZ, Q, Q]
            Nd4j.getExecutioner().exec(new BroadcastMulOp(s.decay, sameDocument, s.decay, 0, 2, 3));
        }
        s.scores = Nd4j.matmul(s.c, s.b, cache.createUninitialized(x.dataType(), bz, nh, q, q), false, true, false);
        INDArray yDiag = Nd4j.matmul(s.scores.mul(s.decay), s.xbar);                            // [BZ, nh, Q, P]

        INDArray total = s.acum.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(q - 1)).dup(); // [BZ, nh]
        s.toEnd = cache.keep(Transforms.exp(broadcastLast(total, q).subi(s.acum), false));
        INDArray chunkEnds = null;
        if (segments != null) {
            // a chunk's state keeps only the document of its last position
            chunkEnds = segments.get(NDArrayIndex.all(), NDArrayIndex.point(q - 1)).dup().reshape(bz, 1);
            Nd4j.getExecutioner().exec(new BroadcastMulOp(s.toEnd, segments.eq(
                    broadcastLast(chunkEnds, q).reshape(bz, q)).castTo(s.toEnd.dataType()), s.toEnd, 0, 2));
        }
        INDArray weighted = mulAlong(s.xbar, s.toEnd, 0, 1, 2);
        INDArray chunkStates = Nd4j.matmul(weighted, s.b, true, false, false);                  // [BZ, nh, P, N]

        // inter-chunk: H_z = Σ_{c<z} exp(cumTot_{z-1} - cumTot_c)·ΔS_c
        INDArray tot = total.reshape(batch, chunks, nh).permute(0, 2, 1).dup('c');              // [B, nh, Z]
        INDArray cumTot = cumsum(tot, 2, false);
        INDArray exponent = pairwiseDifference(cumTot.sub(tot), cumTot, Cache.CURRENT_SCOPE);   // [B, nh, Z, Z]
        INDArray notBelowDiagonal = TriangularMask.fromDiagonal(chunks, 0, -MASKED_EXPONENT, exponent.dataType());
        Nd4j.getExecutioner().exec(new BroadcastAddOp(exponent, notBelowDiagonal, exponent, 2, 3));
        s.interDecay = cache.keep(Transforms.exp(exponent, false));
        INDArray entering = null;
        if (segments != null) {
            // the state entering chunk z is that of chunk z-1's last position: chunk c's state reaches it only
            // within one document
            INDArray ends = chunkEnds.reshape(batch, chunks);
            entering = Nd4j.valueArrayOf(new long[]{batch, chunks}, -2.0, ends.dataType());
            if (chunks > 1) {
                entering.get(NDArrayIndex.all(), NDArrayIndex.interval(1, chunks))
                        .assign(ends.get(NDArrayIndex.all(), NDArrayIndex.interval(0, chunks - 1)));
            }
            Nd4j.getExecutioner().exec(new BroadcastMulOp(s.interDecay, Documents.pairwiseEqual(entering, ends),
                    s.interDecay, 0, 2, 3));
            s.offMask = cache.keep(segments.eq(broadcastLast(entering.reshape(bz, 1), q).reshape(bz, q))
                    .castTo(x.dataType()));
        }
        s.states = cache.copy(chunkStates.reshape(batch, chunks, nh, (long) p * state).permute(0, 2, 1, 3));
        INDArray enteringStates = StackedMatmul.mmul(s.interDecay, s.states, false, false);       // [B, nh, Z, P·N]
        s.entering = cache.copy(enteringStates.reshape(batch, nh, chunks, (long) p * state).permute(0, 2, 1, 3))
                .reshape(bz, nh, p, state);
        s.offProduct = Nd4j.matmul(s.c, s.entering, cache.createUninitialized(x.dataType(), bz, nh, q, p),
                false, true, false);                                                            // [BZ, nh, Q, P]
        s.output = yDiag.addi(mulAlong(s.offProduct, offScale(s), 0, 1, 2));
        return s;
    }

    /** exp(Acum_l), the off-diagonal term's scale, 0 where the entering state is another document's. */
    private static INDArray offScale(Scan s) {
        INDArray scale = Transforms.exp(s.acum, true);
        if (s.offMask != null) {
            Nd4j.getExecutioner().exec(new BroadcastMulOp(scale, s.offMask, scale, 0, 2));
        }
        return scale;
    }

    /** The scan's result as rows [n, nh·P] without the padding; dropped from the state (backprop does not need it). */
    private INDArray scanOutput(Scan s, int batch, int time) {
        INDArray y = unchunked(s.output, batch, time);
        s.output = null;
        return y;
    }

    /** @return {dx [n, nh·P], ddt [n, nh], dB [n, G·N], dC [n, G·N]} */
    private INDArray[] scanBackward(Scan s, INDArray gradYRows, int batch, int time, Map<String, INDArray> gradients) {
        int nh = config.getMambaNumHeads();
        int p = config.getMambaHeadDim();
        int state = config.getSsmStateSize();
        int q = config.getChunkSize();
        int chunks = (time + q - 1) / q;
        long bz = (long) batch * chunks;

        INDArray gradY = chunked(gradYRows, batch, time, nh, p, Cache.CURRENT_SCOPE);           // [BZ, nh, Q, P]
        INDArray expAcum = offScale(s);
        INDArray gradAcum = Nd4j.zeros(s.acum.dataType(), s.acum.shape());

        // Y_off = exp(Acum)·(C·Hᵀ)
        INDArray gradOff = mulAlong(gradY, expAcum, 0, 1, 2);
        gradAcum.addi(gradY.mul(s.offProduct).sum(3).muli(expAcum));
        INDArray gradC = Nd4j.matmul(gradOff, s.entering);                                       // [BZ, nh, Q, N]
        INDArray gradEntering = Nd4j.matmul(gradOff, s.c, true, false, false);                   // [BZ, nh, P, N]

        // H = D_inter·ΔS
        INDArray gradEnteringSeq = gradEntering.reshape(batch, chunks, nh, (long) p * state).permute(0, 2, 1, 3).dup('c');
        INDArray gradStates = StackedMatmul.mmul(s.interDecay, gradEnteringSeq, true, false);    // [B, nh, Z, P·N]
        INDArray gradInterExp = StackedMatmul.mmul(gradEnteringSeq, s.states, false, true).muli(s.interDecay);
        // exponent[z, c] = cumTotBefore_z - cumTot_c
        INDArray gradCumTotBefore = gradInterExp.sum(3);                                          // [B, nh, Z]
        INDArray gradCumTot = gradInterExp.sum(2).negi();
        // cumTotBefore = cumTot - tot; cumTot = cumsum(tot)
        gradCumTot.addi(gradCumTotBefore);
        INDArray gradTot = cumsum(gradCumTot, 2, true).subi(gradCumTotBefore);                  // [B, nh, Z]
        INDArray gradTotal = gradTot.permute(0, 2, 1).dup('c').reshape(bz, nh);                 // [BZ, nh]

        // ΔS = (xbar·toEnd)ᵀ·B
        INDArray gradStatesChunk = gradStates.reshape(batch, nh, chunks, (long) p * state).permute(0, 2, 1, 3).dup('c')
                .reshape(bz, nh, p, state);
        INDArray weighted = mulAlong(s.xbar, s.toEnd, 0, 1, 2);
        INDArray gradWeighted = Nd4j.matmul(s.b, gradStatesChunk, false, true, false);          // [BZ, nh, Q, P]
        INDArray gradB = Nd4j.matmul(weighted, gradStatesChunk);                                 // [BZ, nh, Q, N]
        INDArray gradXbar = mulAlong(gradWeighted, s.toEnd, 0, 1, 2);
        INDArray gradToEnd = gradWeighted.mul(s.xbar).sum(3).muli(s.toEnd);                     // d/d(tot - Acum_s)
        gradTotal.addi(gradToEnd.sum(2));
        gradAcum.subi(gradToEnd);

        // Y_diag = (scores ⊙ decay)·xbar
        INDArray masked = s.scores.mul(s.decay);
        gradXbar.addi(Nd4j.matmul(masked, gradY, true, false, false));
        INDArray gradMasked = Nd4j.matmul(gradY, s.xbar, false, true, false);                   // [BZ, nh, Q, Q]
        INDArray gradScores = gradMasked.mul(s.decay);
        INDArray gradSeg = gradMasked.muli(s.scores).muli(s.decay);                             // d/d(Acum_l - Acum_s)
        gradAcum.addi(gradSeg.sum(3)).subi(gradSeg.sum(2));
        gradC.addi(Nd4j.matmul(gradScores, s.b));
        gradB.addi(Nd4j.matmul(gradScores, s.c, true, false, false));

        // tot = Acum[Q-1]; Acum = cumsum(dt·A)
        gradAcum.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(q - 1)).addi(gradTotal);
        INDArray gradA = cumsum(gradAcum, 2, true);                                              // d/d(dt·A)
        INDArray negA = negExpALog();
        // A = -exp(A_log): dA_log = Σ gradA·dt·A
        gradient(gradients, Mamba2Mixer.A_LOG).assign(ColumnSums.ofLeading(gradA.mul(s.dt), (long) nh * q)
                .reshape(nh, q).sum(1).muli(negA));
        INDArray gradDt = mulAlong(gradA, negA, 1);
        // xbar = dt·x
        gradDt.addi(gradXbar.mul(s.x).sum(3));
        INDArray gradX = mulAlong(gradXbar, s.dt, 0, 1, 2);

        return new INDArray[]{unchunked(gradX, batch, time),
                unchunked(gradDt.reshape(bz, nh, q, 1), batch, time),
                unchunked(perGroup(gradB), batch, time),
                unchunked(perGroup(gradC), batch, time)};
    }

    // ---------------------------------------------------------------------------------------------------------------
    // layout helpers

    /** Rows [B·T, heads·w] → [B·Z, heads, Q, w] (zero-padded to Z·Q steps), in {@code cache}. */
    private INDArray chunked(INDArray rows, int batch, int time, int heads, int width, Cache cache) {
        int q = config.getChunkSize();
        int chunks = (time + q - 1) / q;
        INDArray seq = rows.reshape(batch, time, (long) heads * width);
        if (chunks * q != time) {
            INDArray padded = Nd4j.zeros(rows.dataType(), batch, (long) chunks * q, (long) heads * width);
            padded.get(NDArrayIndex.all(), NDArrayIndex.interval(0, time), NDArrayIndex.all()).assign(seq);
            seq = padded;
        }
        return cache.copy(seq.reshape((long) batch * chunks, q, heads, width).permute(0, 2, 1, 3));
    }

    /** The inverse of {@link #chunked}: [B·Z, heads, Q, w] → rows [B·T, heads·w]. */
    private INDArray unchunked(INDArray chunks, int batch, int time) {
        long heads = chunks.size(1);
        long width = chunks.size(3);
        int q = config.getChunkSize();
        INDArray seq = chunks.permute(0, 2, 1, 3).dup('c').reshape(batch, chunks.size(0) / batch * q, heads * width);
        return seq.get(NDArrayIndex.all(), NDArrayIndex.interval(0, time), NDArrayIndex.all()).dup('c')
                .reshape((long) batch * time, heads * width);
    }

    /** [BZ, G, Q, N] → [BZ, nh, Q, N]: head h reads group h / (nh/G); a new array in {@code cache} unless G = nh. */
    private INDArray perHead(INDArray grouped, Cache cache) {
        int nh = config.getMambaNumHeads();
        int perGroup = nh / config.getNGroups();
        if (perGroup == 1) {
            return grouped;
        }
        long[] shape = grouped.shape();
        INDArray out = cache.createUninitialized(grouped.dataType(), shape[0], nh, shape[2], shape[3]);
        for (int h = 0; h < nh; h++) {
            out.get(NDArrayIndex.all(), NDArrayIndex.point(h), NDArrayIndex.all(), NDArrayIndex.all())
                    .assign(grouped.get(NDArrayIndex.all(), NDArrayIndex.point(h / perGroup), NDArrayIndex.all(),
                            NDArrayIndex.all()));
        }
        return out;
    }

    /** The transpose of {@link #perHead}: sums the heads of each group. */
    private INDArray perGroup(INDArray perHead) {
        int groups = config.getNGroups();
        int perGroup = config.getMambaNumHeads() / groups;
        if (perGroup == 1) {
            return perHead;
        }
        long[] shape = perHead.shape();
        return perHead.reshape(shape[0], groups, perGroup, shape[2] * shape[3]).sum(2)
                .reshape(shape[0], groups, shape[2], shape[3]);
    }

    /** [n, nh·P] rows as a [n, nh, P] view. */
    private INDArray headsView(INDArray rows) {
        return rows.reshape(rows.size(0), config.getMambaNumHeads(), config.getMambaHeadDim());
    }

    private static INDArray columns(INDArray rows, long from, long to) {
        return rows.get(NDArrayIndex.all(), NDArrayIndex.interval(from, to));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // elementwise pieces

    private INDArray negExpALog() {
        return Transforms.exp(param(Mamba2Mixer.A_LOG), true).negi();
    }

    private INDArray clampToTimeStepLimit(INDArray dt) {
        double[] limit = config.getTimeStepLimit();
        if (limit == null) {
            return dt;
        }
        if (limit[0] > 0.0) {
            Transforms.max(dt, limit[0], false);
        }
        if (!Double.isInfinite(limit[1])) {
            Transforms.min(dt, limit[1], false);
        }
        return dt;
    }

    /** 1 where the clamp did not bind, 0 where it did (clipByValue's gradient). */
    private INDArray clampMask(INDArray dt) {
        INDArray mask = Nd4j.ones(dt.dataType(), dt.shape());
        double[] limit = config.getTimeStepLimit();
        if (limit != null && limit[0] > 0.0) {
            mask.muli(dt.gt(limit[0]).castTo(dt.dataType()));
        }
        if (limit != null && !Double.isInfinite(limit[1])) {
            mask.muli(dt.lt(limit[1]).castTo(dt.dataType()));
        }
        return mask;
    }

    /** σ(x) into a new array in {@code cache}. */
    private static INDArray sigmoid(INDArray x, Cache cache) {
        INDArray out = cache.createUninitialized(x.dataType(), x.shape());
        Nd4j.exec(new Sigmoid(x, out));
        return out;
    }

    /** d silu / dx = σ(x)·(1 + x·(1 − σ(x))), given σ(x). */
    private static INDArray siluDerivative(INDArray x, INDArray sigma) {
        return sigma.rsub(1.0).muli(x).addi(1.0).muli(sigma);
    }

    /** x·y with y spread along {@code dims} of x (y's shape is x's shape on those axes), into a new array. */
    private static INDArray mulAlong(INDArray x, INDArray y, int... dims) {
        return mulAlong(x, y, Cache.CURRENT_SCOPE, dims);
    }

    /** {@link #mulAlong(INDArray, INDArray, int...)} into a new array in {@code cache}. */
    private static INDArray mulAlong(INDArray x, INDArray y, Cache cache, int... dims) {
        INDArray out = cache.createUninitialized(x.dataType(), x.shape());
        Nd4j.getExecutioner().exec(new BroadcastMulOp(x, y, out, dims));
        return out;
    }

    /** out[..., l, s] = left[..., l] − right[..., s] for [A, B, L] operands, a new array in {@code cache}. */
    private static INDArray pairwiseDifference(INDArray left, INDArray right, Cache cache) {
        long[] s = left.shape();
        INDArray out = cache.createUninitialized(left.dataType(), s[0], s[1], s[2], right.size(2)).assign(0);
        Nd4j.getExecutioner().exec(new BroadcastAddOp(out, left, out, 0, 1, 2));
        Nd4j.getExecutioner().exec(new BroadcastSubOp(out, right, out, 0, 1, 3));
        return out;
    }

    /** v [A, B] repeated along a new last axis of length len. */
    private static INDArray broadcastLast(INDArray v, int len) {
        INDArray out = Nd4j.zeros(v.dataType(), v.size(0), v.size(1), len);
        Nd4j.getExecutioner().exec(new BroadcastAddOp(out, v, out, 0, 1));
        return out;
    }

    /**
     * Inclusive cumulative sum along {@code axis}; {@code reverse}: out[j] = Σ_{l ≥ j} v[l]. The native op:
     * {@code INDArray.cumsum} is a recursive Java loop in M2.1 (slow, and a stack overflow on an axis of length 1).
     */
    private static INDArray cumsum(INDArray v, int axis, boolean reverse) {
        INDArray out = Nd4j.createUninitialized(v.dataType(), v.shape());
        Nd4j.exec(new CumSum(v, out, false, reverse, axis));
        return out;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // the causal conv

    // The padded input [B, T+K-1, C] is read as flat rows [B·(T+K-1), C], so that each tap is one product of two
    // contiguous row ranges (fast) instead of a strided [B, T, C] window (slow in M2.1). Row b·(T+K-1)+t of the flat
    // output is step t of sequence b; the last K-1 rows of each sequence mix two sequences and are never read.

    /**
     * out[t] = bias + Σ_j W[:, 0, j]·in[t + j] over the left-padded input [B, T+K-1, C]; returns [B, T, C] in
     * {@code cache}.
     */
    private INDArray causalConv(INDArray padded, int time, INDArray[] masks, Cache cache) {
        int k = config.getConvKernel();
        long channels = padded.size(2);
        INDArray taps = param(Mamba2Mixer.CONV_WEIGHT).reshape(channels, k);
        INDArray in = flatRows(padded);
        long rows = in.size(0) - (k - 1);
        INDArray out = Nd4j.zeros(padded.dataType(), in.size(0), channels);
        INDArray valid = rowRange(out, 0, rows);
        for (int j = 0; j < k; j++) {
            INDArray term = rowRange(in, j, rows).mulRowVector(tap(taps, j));
            valid.addi(masks == null || masks[j] == null ? term : term.muliColumnVector(masks[j]));
        }
        if (params.containsKey(prefix + Mamba2Mixer.CONV_BIAS)) {
            valid.addiRowVector(param(Mamba2Mixer.CONV_BIAS));
        }
        return cache.copy(timeWindow(out.reshape(padded.shape()), 0, time));
    }

    /** Writes the conv weight (and bias) gradients; returns d/d(padded input) [B, T+K-1, C]. */
    private INDArray causalConvBackward(INDArray padded, INDArray gradOut, int time, INDArray[] masks,
                                        Map<String, INDArray> gradients) {
        int k = config.getConvKernel();
        long channels = padded.size(2);
        INDArray taps = param(Mamba2Mixer.CONV_WEIGHT).reshape(channels, k);
        INDArray gradTaps = gradient(gradients, Mamba2Mixer.CONV_WEIGHT).reshape(channels, k);
        INDArray gradFull = Nd4j.zeros(padded.dataType(), padded.shape());     // 0 on the rows that are never read
        timeWindow(gradFull, 0, time).assign(gradOut);
        INDArray in = flatRows(padded);
        INDArray grad = flatRows(gradFull);
        long rows = in.size(0) - (k - 1);
        INDArray gradValid = rowRange(grad, 0, rows);
        INDArray gradIn = Nd4j.zeros(padded.dataType(), in.shape());
        for (int j = 0; j < k; j++) {
            INDArray gradTerm = masks == null || masks[j] == null ? gradValid : gradValid.mulColumnVector(masks[j]);
            gradTaps.get(NDArrayIndex.all(), NDArrayIndex.point(j)).assign(ColumnSums.of(gradTerm.mul(rowRange(in, j, rows))));
            rowRange(gradIn, j, rows).addi(gradTerm.mulRowVector(tap(taps, j)));
        }
        if (gradients.containsKey(prefix + Mamba2Mixer.CONV_BIAS)) {
            gradient(gradients, Mamba2Mixer.CONV_BIAS).assign(ColumnSums.ofLeading(gradOut, channels));
        }
        return gradIn.reshape(padded.shape());
    }

    /**
     * Per tap j (which reads K-1-j steps back), a column over the conv's flat output rows: 1 where that step is in
     * the output step's document, 0 elsewhere; null for the last tap (the step itself).
     */
    private INDArray[] convMasks(Documents documents, Cache cache) {
        int k = config.getConvKernel();
        int batch = documents.batch();
        int time = documents.time();
        INDArray[] masks = new INDArray[k];
        for (int j = 0; j < k - 1; j++) {
            INDArray perStep = Nd4j.zeros(documents.segments().dataType(), batch, time + k - 1);
            perStep.get(NDArrayIndex.all(), NDArrayIndex.interval(0, time)).assign(documents.sameAsEarlier(k - 1 - j));
            masks[j] = cache.copy(perStep.reshape((long) batch * (time + k - 1), 1)
                    .get(NDArrayIndex.interval(0, (long) batch * (time + k - 1) - (k - 1)), NDArrayIndex.all()));
        }
        return masks;
    }

    /** Tap j of the [C, K] conv weight as a [C] vector. */
    private static INDArray tap(INDArray taps, int j) {
        return taps.get(NDArrayIndex.all(), NDArrayIndex.point(j)).dup();
    }

    /** A c-order [B, S, C] array as [B·S, C] rows (a view). */
    private static INDArray flatRows(INDArray sequence) {
        return sequence.reshape(sequence.size(0) * sequence.size(1), sequence.size(2));
    }

    /** Rows from … from+count-1 (a contiguous view). */
    private static INDArray rowRange(INDArray rows, long from, long count) {
        return rows.get(NDArrayIndex.interval(from, from + count), NDArrayIndex.all());
    }

    /** Steps j … j+T-1 of a [B, T+K-1, C] array (a view). */
    private static INDArray timeWindow(INDArray padded, int j, int time) {
        INDArrayIndex all = NDArrayIndex.all();
        return padded.get(all, NDArrayIndex.interval(j, j + time), all);
    }
}
