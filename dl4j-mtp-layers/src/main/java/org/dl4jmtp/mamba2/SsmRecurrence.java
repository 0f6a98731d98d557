package org.dl4jmtp.mamba2;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Arrays;

/**
 * The Mamba2 selective-scan recurrence of docs/model.md, "Mamba2" step 6, continued from a stored state:
 * <pre>
 * S_t = exp(dt_t·A)·S_{t-1} + dt_t·x_t ⊗ B_t        y_t = S_t·C_t          (per head; S is [P, N])
 * </pre>
 * One token is the recurrence itself. A block of n tokens uses its closed form
 * {@code S_j = exp(Acum_j)·S_0 + Σ_{s≤j} exp(Acum_j − Acum_s)·dt_s·x_s ⊗ B_s} (Acum = within-block cumulative sum of
 * dt·A), batched over heads, which also yields the state after every token of the block (the rollback points).
 */
public final class SsmRecurrence {

    /**
     * @param y       [n, nh, P], without the D skip term
     * @param history [nh, n, P, N], the state after each token; the last one is the new state
     */
    public record Result(INDArray y, INDArray history) {
        public INDArray finalState() {
            long m = history.size(1);
            return m == 1 ? history.reshape(history.size(0), history.size(2), history.size(3))   // nothing to cut out
                    : stateAfter(history, (int) m - 1);
        }
    }

    /** The state [nh, P, N] after token {@code j} of a block's history [nh, m, P, N] (a copy). */
    public static INDArray stateAfter(INDArray history, int j) {
        return history.get(NDArrayIndex.all(), NDArrayIndex.point(j), NDArrayIndex.all(), NDArrayIndex.all()).dup('c');
    }

    private SsmRecurrence() {
    }

    /**
     * @param state [nh, P, N] the state before the block
     * @param x     [n, nh, P] post-conv x
     * @param dt    [n, nh] softplus'd time steps
     * @param a     [nh] A = −exp(A_log)
     * @param b     [n, G, N] B per group (head h reads group h / (nh/G))
     * @param c     [n, G, N] C per group
     */
    public static Result scan(INDArray state, INDArray x, INDArray dt, INDArray a, INDArray b, INDArray c) {
        return x.size(0) == 1 ? oneToken(state, x, dt, a, b, c) : block(state, x, dt, a, b, c);
    }

    /** One token: the recurrence itself, heads arranged as [G, nh/G] so that B and C broadcast without a copy. */
    private static Result oneToken(INDArray state, INDArray x, INDArray dt, INDArray a, INDArray b, INDArray c) {
        long nh = state.size(0);
        long p = state.size(1);
        long n = state.size(2);
        long g = b.size(1);
        long perGroup = nh / g;
        INDArray decay = Transforms.exp(dt.mul(a), false).reshape(nh, 1, 1);
        INDArray input = x.reshape(g, perGroup, p, 1).mul(dt.reshape(g, perGroup, 1, 1))
                .mul(b.reshape(g, 1, 1, n)).reshape(nh, p, n);                                      // dt·x ⊗ B
        INDArray next = input.addi(state.mul(decay));
        INDArray y = Nd4j.matmul(next.reshape(g, perGroup * p, n), c.reshape(g, n, 1)).reshape(1, nh, p);   // S·C
        return new Result(y, next.reshape(nh, 1, p, n));
    }

    private static Result block(INDArray state, INDArray x, INDArray dt, INDArray a, INDArray b, INDArray c) {
        long len = x.size(0);
        long nh = state.size(0);
        long p = state.size(1);
        long n = state.size(2);

        INDArray acum = dt.mul(a).cumsum(0).transpose().dup('c');             // [nh, len]
        INDArray causal = lowerTriangular((int) len, x.dataType());
        // decay[h, j, s] = exp(Acum_j − Acum_s) for s ≤ j, else 0 (masked before the exp so nothing overflows)
        INDArray exponent = acum.reshape(nh, len, 1).sub(acum.reshape(nh, 1, len)).muli(causal);
        INDArray decay = Transforms.exp(exponent, false).muli(causal);

        INDArray xbar = x.mul(dt.reshape(len, nh, 1)).permute(1, 0, 2).reshape(nh, len, p, 1);      // dt·x
        INDArray bHeads = heads(b, nh).permute(1, 0, 2).reshape(nh, len, 1, n);
        INDArray inputs = xbar.mul(bHeads).reshape(nh, len, p * n);                                  // dt·x ⊗ B
        INDArray fromStart = Transforms.exp(acum, false).reshape(nh, len, 1).mul(state.reshape(nh, 1, p * n));
        INDArray states = Nd4j.matmul(decay, inputs).addi(fromStart).reshape(nh, len, p, n);

        INDArray cHeads = heads(c, nh).permute(1, 0, 2).dup('c').reshape(nh, len, n, 1);
        INDArray y = Nd4j.matmul(states, cHeads).reshape(nh, len, p).permute(1, 0, 2).dup('c');     // [len, nh, P]
        return new Result(y, states);
    }

    /** [len, G, N] → [len, nh, N]: group g repeated for its nh/G heads. */
    private static INDArray heads(INDArray groups, long nh) {
        long perGroup = nh / groups.size(1);
        return perGroup == 1 ? groups : groups.repeat(1, perGroup);
    }

    /** [len, len] ones on and below the diagonal, zeros above: [j, s] = 1 for s ≤ j. */
    private static INDArray lowerTriangular(int len, DataType dataType) {
        double[] ones = new double[len * len];
        for (int j = 0; j < len; j++) {
            Arrays.fill(ones, j * len, j * len + j + 1, 1.0);
        }
        return Nd4j.createFromArray(ones).castTo(dataType).reshape(len, len);
    }
}
