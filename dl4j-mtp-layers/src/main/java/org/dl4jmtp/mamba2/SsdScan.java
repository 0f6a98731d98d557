package org.dl4jmtp.mamba2;

import org.dl4jmtp.layers.Documents;
import org.dl4jmtp.layers.M21Workarounds;
import org.dl4jmtp.layers.SdMath;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The chunked SSD (state space duality) scan of Mamba2 (docs/model.md, "The chunked SSD scan"), vectorised over batch,
 * chunks and heads. Mathematically identical to the per-timestep recurrence
 * {@code S_t = exp(dt_t·A)·S_{t-1} + dt_t·x_t⊗B_t, y_t = S_t·C_t} with {@code S_{-1} = 0}, for any sequence length
 * and chunk size: the sequence is zero-padded to a multiple of the chunk length Q inside the graph (padded steps have
 * dt = 0, so they neither decay nor feed the state) and the padding is cut off again.
 *
 * <p>The inter-chunk step is the canonical Mamba2 form (state entering chunk z = Σ_{c<z} exp(Σ_{j=c+1}^{z-1} tot_j)·ΔS_c),
 * computed as one masked [Z×Z] decay matrix times the chunk states: no Java loop over chunks, so the number of chunks
 * stays dynamic. (HF's pure-PyTorch path sums over the wrong axis for T > Q; this does not copy it.)
 */
public final class SsdScan {

    /** Added (negated) to masked exponents so that exp() underflows to exactly 0 (representable in float). */
    private static final double MASKED_EXPONENT = 1e30;

    private SsdScan() {
    }

    /**
     * @param x  [B, T, nh, P] post-conv x
     * @param dt [B, T, nh] softplus'd time steps
     * @param a  [nh] the (negative) A = -exp(A_log)
     * @param b  [B, T, G, N]
     * @param c  [B, T, G, N]
     * @return y [B, T, nh, P] without the D skip term
     */
    public static SDVariable scan(SameDiff sd, SDVariable x, SDVariable dt, SDVariable a, SDVariable b, SDVariable c,
                                  int nh, int p, int g, int n, int q) {
        return scan(sd, x, dt, a, b, c, null, nh, p, g, n, q);
    }

    /**
     * {@link #scan} within each document ({@code segments} [B, T], null: one per row): every term that would carry
     * state from one document into another gets −MASKED_EXPONENT in its exponent, so the state restarts at each
     * document start (docs/model.md, "Packed documents").
     */
    public static SDVariable scan(SameDiff sd, SDVariable x, SDVariable dt, SDVariable a, SDVariable b, SDVariable c,
                                  SDVariable segments, int nh, int p, int g, int n, int q) {
        DataType type = x.dataType();
        int headsPerGroup = nh / g;

        // Pad T up to a multiple of Q; the reshape to [B·Z, Q, ...] then needs only one inferred axis.
        SDVariable padAmount = padToMultiple(sd, sd.sizeAt(x, 1), q);
        SDVariable xc = padTime(sd, x, padAmount, 4).reshape(-1, q, nh, p);
        SDVariable dtc = padTime(sd, dt, padAmount, 3).reshape(-1, q, nh);
        // Head-major layout [BZ, nh, Q, ·] so that every product below is a rank-4 batched mmul.
        SDVariable bh = headsFromGroups(sd, padTime(sd, b, padAmount, 4).reshape(-1, q, g, n), q, g, headsPerGroup, n);
        SDVariable ch = headsFromGroups(sd, padTime(sd, c, padAmount, 4).reshape(-1, q, g, n), q, g, headsPerGroup, n);
        SDVariable xh = xc.permute(0, 2, 1, 3);
        SDVariable dth = dtc.permute(0, 2, 1);                                   // [BZ, nh, Q]
        SDVariable decayRate = M21Workarounds.broadcastMul(sd, dth, a.reshape(1, nh, 1));  // a_l = dt_l·A

        // Within-chunk cumulative sum as a product with a constant triangular matrix (no cumsum op needed).
        SDVariable upperOnes = sd.constant(triangular(type, q, false));
        SDVariable acum = sd.mmul(decayRate.reshape(-1, q), upperOnes).reshape(-1, nh, q);  // [BZ, nh, Q]

        // Intra-chunk (diagonal) term: Y_diag[l] = Σ_{s≤l} (C_l·B_s)·exp(Acum[l]-Acum[s])·X̄_s
        // [l, s]: 0 for l >= s, -MASKED_EXPONENT above the diagonal (a constant, built once)
        SDVariable causalBias = sd.constant(triangular(type, q, true).subi(1.0).muli(MASKED_EXPONENT));
        SDVariable segsum = sd.expandDims(acum, 3).sub(sd.expandDims(acum, 2));
        SDVariable segmentsc = null;
        SDVariable chunkEnds = null;
        if (segments != null) {
            // padded steps form a document of their own (-1); they carry nothing (dt = 0) either way
            segmentsc = padTime(sd, segments, padAmount, 2, -1.0).reshape(-1, q);            // [BZ, Q]
            chunkEnds = SdMath.sliceLastAxis(sd, segmentsc, 2, q - 1, q);                     // [BZ, 1]
            causalBias = causalBias.add(sd.expandDims(
                    Documents.crossDocumentBias(sd, segmentsc, segmentsc, MASKED_EXPONENT), 1)); // [BZ, 1, Q, Q]
        }
        SDVariable decay = maskedExp(sd, segsum, causalBias);
        SDVariable xbar = M21Workarounds.broadcastMul(sd, xh, sd.expandDims(dth, 3));   // X̄ = dt·x
        SDVariable scores = sd.mmul(ch, bh, false, true, false);                 // [BZ, nh, Q, Q]
        SDVariable yDiag = sd.mmul(scores.mul(decay), xbar);                     // [BZ, nh, Q, P]

        // Chunk states ΔS_c = Σ_s exp(Acum[Q-1]-Acum[s])·X̄_s ⊗ B_s : [BZ, nh, P, N]
        SDVariable chunkTotal = SdMath.sliceLastAxis(sd, acum, 3, q - 1, q);    // [BZ, nh, 1]
        SDVariable toEndExponent = chunkTotal.sub(acum);
        if (segments != null) {
            // a chunk's state keeps only the document of its last position
            toEndExponent = toEndExponent.add(sd.expandDims(maskBias(segmentsc.eq(chunkEnds).castTo(type)), 1));
        }
        SDVariable toEnd = sd.math().exp(toEndExponent);
        SDVariable weightedX = M21Workarounds.broadcastMul(sd, xbar, sd.expandDims(toEnd, 3));
        SDVariable chunkStates = sd.mmul(weightedX.permute(0, 1, 3, 2), bh);

        // Inter-chunk scan over the (dynamic) chunk axis, batched per sequence and head.
        SDVariable batch = SdMath.dims(sd, x, 0, 1);
        SDVariable tot = SdMath.reshape(sd, chunkTotal, batch, SdMath.constDims(sd, -1, nh)).permute(0, 2, 1); // [B, nh, Z]
        SDVariable states = SdMath.reshape(sd, chunkStates, batch, SdMath.constDims(sd, -1, nh, (long) p * n))
                .permute(0, 2, 1, 3);                                             // [B, nh, Z, P·N]
        SDVariable cumTot = M21Workarounds.cumsumAlongAxis(sd, tot, 2, 3);
        SDVariable cumTotBefore = cumTot.sub(tot);
        SDVariable strictlyEarlier = SdMath.causalMask(sd, sd.sizeAt(tot, 2), type, true); // [z, c] = 1 for c < z
        SDVariable interExponent = sd.expandDims(cumTotBefore, 3).sub(sd.expandDims(cumTot, 2));
        SDVariable interBias = maskBias(strictlyEarlier);
        SDVariable offExponent = acum;
        if (segments != null) {
            // the state entering chunk z is that of chunk z-1's last position: chunk c's state reaches it, and
            // position l of chunk z reads it, only within one document
            SDVariable ends = SdMath.reshape(sd, chunkEnds, batch, SdMath.constDims(sd, -1));          // [B, Z]
            SDVariable enteringSegments = sd.stridedSlice(sd.nn().pad(ends, sd.constant(Nd4j.createFromArray(
                    new long[][]{{0, 0}, {1, 0}})), -2.0), new long[]{0, 0}, new long[]{0, -1}, new long[]{1, 1},
                    0b11, 0b01, 0, 0, 0);                                                          // [B, Z]
            interBias = interBias.add(sd.expandDims(
                    Documents.crossDocumentBias(sd, enteringSegments, ends, MASKED_EXPONENT), 1));
            SDVariable enteringPerChunk = enteringSegments.reshape(-1, 1);                                // [BZ, 1]
            offExponent = acum.add(sd.expandDims(maskBias(segmentsc.eq(enteringPerChunk).castTo(type)), 1));
        }
        SDVariable enteringStates = sd.mmul(maskedExp(sd, interExponent, interBias), states); // [B, nh, Z, P·N]
        SDVariable entering = enteringStates.permute(0, 2, 1, 3).reshape(-1, nh, p, n).permute(0, 1, 3, 2); // [BZ, nh, N, P]

        // Off-diagonal term: Y_off[l] = exp(Acum[l])·(C_l·H_z)
        SDVariable yOff = M21Workarounds.broadcastMul(sd, sd.mmul(ch, entering), sd.expandDims(sd.math().exp(offExponent), 3));

        SDVariable yPadded = SdMath.reshape(sd, yDiag.add(yOff).permute(0, 2, 1, 3), batch, SdMath.constDims(sd, -1, nh, p));
        return sd.slice(yPadded, sd.constant(Nd4j.zeros(DataType.LONG, 4)), sd.shape(x));
    }

    /** (Q - T mod Q) mod Q as a LONG scalar. */
    private static SDVariable padToMultiple(SameDiff sd, SDVariable length, int q) {
        return sd.math().floorMod(length.neg(), sd.constant(Nd4j.scalar(DataType.LONG, q)));
    }

    /** Zero-pads axis 1 (time) of a rank-{@code rank} variable at the end by a dynamic amount. */
    private static SDVariable padTime(SameDiff sd, SDVariable v, SDVariable padAmount, int rank) {
        return padTime(sd, v, padAmount, rank, 0.0);
    }

    /** Pads axis 1 (time) of a rank-{@code rank} variable at the end by a dynamic amount with {@code value}. */
    private static SDVariable padTime(SameDiff sd, SDVariable v, SDVariable padAmount, int rank, double value) {
        SDVariable none = sd.constant(Nd4j.zeros(DataType.LONG, 1, 2));
        SDVariable timeRow = sd.concat(1, sd.constant(Nd4j.zeros(DataType.LONG, 1, 1)), padAmount.reshape(1, 1));
        SDVariable[] rows = new SDVariable[rank];
        for (int i = 0; i < rank; i++) {
            rows[i] = i == 1 ? timeRow : none;
        }
        return sd.nn().pad(v, sd.concat(0, rows), value);
    }

    /**
     * [BZ, Q, G, N] → head-major [BZ, nh, Q, N]: head h reads group h / (nh/G) (heads are contiguous per group).
     * Done as a product with a constant 0/1 [G, nh] expansion matrix ({@link SdMath#blockExpansion}) rather than a
     * {@code tile}.
     */
    private static SDVariable headsFromGroups(SameDiff sd, SDVariable v, int q, int g, int headsPerGroup, int n) {
        if (headsPerGroup == 1) {
            return v.permute(0, 2, 1, 3);
        }
        int nh = g * headsPerGroup;
        SDVariable expansion = SdMath.blockExpansion(sd, v.dataType(), g, headsPerGroup);
        SDVariable perHead = sd.mmul(v.permute(0, 1, 3, 2).reshape(-1, g), expansion); // [BZ·Q·N, nh]
        return perHead.reshape(-1, q, n, nh).permute(0, 3, 1, 2);
    }

    /**
     * exp(v + bias) with a bias of 0 where kept and -MASKED_EXPONENT where masked ({@link #maskBias}): masked entries
     * underflow to exactly 0 with a zero gradient (for any finite v). Additive rather than {@code v·mask} because
     * M2.1's broadcast multiply_bp is slow (see {@link M21Workarounds#broadcastMul}).
     */
    private static SDVariable maskedExp(SameDiff sd, SDVariable v, SDVariable bias) {
        return sd.math().exp(v.add(bias));
    }

    /** The additive bias of a 0/1 mask: 0 where mask = 1, -MASKED_EXPONENT where mask = 0. */
    private static SDVariable maskBias(SDVariable mask) {
        return mask.sub(1.0).mul(MASKED_EXPONENT);
    }

    /** Constant [q, q] 0/1 matrix: lower-triangular (row >= col) or upper-triangular (row <= col). */
    private static org.nd4j.linalg.api.ndarray.INDArray triangular(DataType type, int q, boolean lower) {
        org.nd4j.linalg.api.ndarray.INDArray m = Nd4j.zeros(type, q, q);
        for (int r = 0; r < q; r++) {
            for (int col = 0; col < q; col++) {
                if (lower ? r >= col : r <= col) {
                    m.putScalar(r, col, 1.0);
                }
            }
        }
        return m;
    }
}
