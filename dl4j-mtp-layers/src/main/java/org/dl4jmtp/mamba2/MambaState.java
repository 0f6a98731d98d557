package org.dl4jmtp.mamba2;

import org.dl4jmtp.layers.LayerState;
import org.dl4jmtp.layers.rows.RowOps;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The state of one Mamba2 block (docs/model.md, "The chunked SSD scan", last paragraph): the conv window (pre-conv xBC
 * rows of the last K−1 tokens,
 * zeros before the start) and the SSM state [nh, P, N]. Keeps the restore points of its last step: the window and
 * state before it, and the SSM state after each of its last tokens (as many as the last scan block held).
 */
public final class MambaState implements LayerState {

    private final int windowRows;
    private INDArray window;
    private INDArray ssm;
    private int length;

    private int stepStart;
    private INDArray stepInputs;     // [K−1+n, convDim]: the window before the step, then the step's pre-conv rows
    private INDArray ssmBefore;
    private INDArray history;        // [nh, m, P, N]: states after lengths historyStart+1 .. historyStart+m
    private int historyStart;

    public MambaState(INDArray zeroWindow, INDArray zeroSsm) {
        this.windowRows = (int) zeroWindow.size(0);
        this.window = zeroWindow;
        this.ssm = zeroSsm;
        this.stepInputs = zeroWindow;
        this.ssmBefore = zeroSsm;
    }

    public INDArray window() {
        return window;
    }

    public INDArray ssm() {
        return ssm;
    }

    /**
     * Records a step of n tokens.
     *
     * @param inputs       [K−1+n, convDim] the previous window followed by the step's pre-conv xBC rows
     * @param newSsm       the state after the step
     * @param lastStates   [nh, m, P, N] the states after the step's last m tokens (m ≥ 1)
     */
    public void advance(INDArray inputs, INDArray newSsm, INDArray lastStates) {
        int n = (int) inputs.size(0) - windowRows;
        stepStart = length;
        stepInputs = inputs;
        ssmBefore = ssm;
        history = lastStates;
        historyStart = length + n - (int) lastStates.size(1);
        length += n;
        window = RowOps.rows(inputs, n, n + windowRows).dup('c');
        ssm = newSsm;
    }

    @Override
    public void truncate(int newLength) {
        if (newLength == length) {
            return;
        }
        int j = newLength - stepStart;
        boolean keptState = j == 0 || newLength > historyStart;
        if (newLength < stepStart || newLength > length || !keptState) {
            throw new IllegalStateException("Mamba state after " + length + " tokens cannot be rolled back to "
                    + newLength + " (restorable: " + stepStart + " and " + (historyStart + 1) + ".." + length + ")");
        }
        window = RowOps.rows(stepInputs, j, j + windowRows).dup('c');
        ssm = j == 0 ? ssmBefore : SsmRecurrence.stateAfter(history, newLength - historyStart - 1);
        length = newLength;
    }
}
