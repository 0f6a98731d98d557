package org.dl4jmtp.moe;

import org.dl4jmtp.layers.RowMixer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.Map;

/**
 * The MoE mixer (docs/model.md, "MoE"; same math as {@link MoeMixer}) on token rows with its explicit backprop,
 * each expert
 * computed only on the tokens routed to it: the n·k (token, expert) rows are gathered in expert order
 * ({@link MoeRouting}), each expert is two GEMMs on its contiguous block, and each token sums its k weighted rows.
 * Parameter and gradient maps use {@link MoeMixer}'s keys below {@code prefix}.
 */
public final class SparseMoe extends RowMixer<SparseMoe.Forward> {

    /** What backprop needs from one forward pass. */
    public static final class Forward {
        final INDArray input;        // [n, H] the normed block input
        public final MoeRouting routing;
        final INDArray rowInput;     // [n·k, in] expert input of each dispatch row
        final INDArray rowHidden;    // [n·k, I] relu(up·x) of each dispatch row
        final INDArray rowOutput;    // [n·k, in] unweighted expert output of each dispatch row
        final INDArray routed;       // [n, in] weighted sum over the chosen experts (LatentMoE only)
        final INDArray sharedHidden; // [n, Is] relu(shared_up·x)

        private Forward(INDArray input, MoeRouting routing, INDArray rowInput, INDArray rowHidden, INDArray rowOutput,
                        INDArray routed, INDArray sharedHidden) {
            this.input = input;
            this.routing = routing;
            this.rowInput = rowInput;
            this.rowHidden = rowHidden;
            this.rowOutput = rowOutput;
            this.routed = routed;
            this.sharedHidden = sharedHidden;
        }
    }

    private final MoeConfig config;

    public SparseMoe(MoeConfig config, Map<String, INDArray> params, String prefix) {
        super(params, prefix);
        this.config = config;
    }

    @Override
    public Result<Forward> forward(INDArray x, int batch, Cache cache) {
        int n = (int) x.size(0);
        int experts = config.getNRoutedExperts();
        int k = config.getNumExpertsPerTok();
        DataType type = x.dataType();

        INDArray scores = Transforms.sigmoid(Nd4j.gemm(x, param(MoeMixer.GATE), false, true), false); // [n, E]
        INDArray selection = MoeRouting.selectionValues(scores, param(MoeMixer.CORRECTION_BIAS));
        MoeRouting routing = MoeRouting.route(scores.data().asDouble(), selection.data().asDouble(), n, config, type);

        INDArray expertInput = config.hasLatentMoe() ? Nd4j.gemm(x, param(MoeMixer.FC1_LATENT), false, true) : x;
        long in = expertInput.size(1);
        long rows = (long) n * k;
        INDArray rowInput = cache.createUninitialized(type, rows, in);
        Nd4j.pullRows(expertInput, rowInput, 1, routing.tokenOfRow);
        INDArray rowHidden = cache.createUninitialized(type, rows, config.getMoeIntermediateSize());
        INDArray rowOutput = cache.createUninitialized(type, rows, in);
        for (int e = 0; e < experts; e++) {
            if (routing.count(e) > 0) {
                Nd4j.gemm(block(rowInput, routing, e), param(MoeMixer.expertUp(e)), block(rowHidden, routing, e),
                        false, true, 1.0, 0.0);
            }
        }
        Transforms.relu(rowHidden, false);
        INDArray rowActivation = rowHidden.mul(rowHidden);
        for (int e = 0; e < experts; e++) {
            if (routing.count(e) > 0) {
                Nd4j.gemm(block(rowActivation, routing, e), param(MoeMixer.expertDown(e)), block(rowOutput, routing, e),
                        false, true, 1.0, 0.0);
            }
        }
        INDArray weighted = rowOutput.mulColumnVector(column(routing.weightOfRow, type));
        INDArray routed = sumChoices(weighted, routing);                                             // [n, in]
        INDArray mixed = config.hasLatentMoe() ? Nd4j.gemm(routed, param(MoeMixer.FC2_LATENT), false, true) : routed;

        INDArray sharedHidden = cache.createUninitialized(type, n, config.getMoeSharedExpertIntermediateSize());
        Transforms.relu(Nd4j.gemm(x, param(MoeMixer.SHARED_UP), sharedHidden, false, true, 1.0, 0.0), false);
        INDArray sharedActivation = sharedHidden.mul(sharedHidden);
        Nd4j.gemm(sharedActivation, param(MoeMixer.SHARED_DOWN), mixed, false, true, 1.0, 1.0);
        INDArray keptRouted = config.hasLatentMoe() ? cache.keep(routed) : null;                    // for fc2's gradient
        return new Result<>(mixed, new Forward(x, routing, rowInput, rowHidden, rowOutput, keptRouted, sharedHidden));
    }

    /** The frozen correction bias gets a zero gradient, as do experts that received no token. */
    @Override
    public INDArray backward(Forward f, INDArray gradOut, Map<String, INDArray> gradients) {
        MoeRouting routing = f.routing;
        DataType type = gradOut.dataType();
        int experts = routing.experts;

        // shared expert: out += relu(x·Suᵀ)²·Sdᵀ
        INDArray sharedActivation = f.sharedHidden.mul(f.sharedHidden);
        Nd4j.gemm(gradOut, sharedActivation, gradient(gradients, MoeMixer.SHARED_DOWN), true, false, 1.0, 0.0);
        INDArray sharedPre = Nd4j.gemm(gradOut, param(MoeMixer.SHARED_DOWN), false, false).muli(f.sharedHidden).muli(2.0);
        Nd4j.gemm(sharedPre, f.input, gradient(gradients, MoeMixer.SHARED_UP), true, false, 1.0, 0.0);
        INDArray gradInput = Nd4j.gemm(sharedPre, param(MoeMixer.SHARED_UP), false, false);          // [n, H]

        INDArray gradRouted = gradOut;
        if (config.hasLatentMoe()) {
            Nd4j.gemm(gradOut, f.routed, gradient(gradients, MoeMixer.FC2_LATENT), true, false, 1.0, 0.0);
            gradRouted = Nd4j.gemm(gradOut, param(MoeMixer.FC2_LATENT), false, false);              // [n, in]
        }

        // routed experts: each dispatch row r of token t contributes w_r·y_r to out_t
        INDArray gradRowOutput = Nd4j.pullRows(gradRouted, 1, routing.tokenOfRow);                   // [n·k, in]
        double[] weightGradient = gradRowOutput.mul(f.rowOutput).sum(1).data().asDouble();
        gradRowOutput.muliColumnVector(column(routing.weightOfRow, type));
        INDArray rowActivation = f.rowHidden.mul(f.rowHidden);
        INDArray gradRowHidden = Nd4j.createUninitialized(type, f.rowHidden.shape());
        for (int e = 0; e < experts; e++) {
            INDArray gradDown = gradient(gradients, MoeMixer.expertDown(e));
            if (routing.count(e) == 0) {
                gradDown.assign(0);
                continue;
            }
            INDArray gradY = block(gradRowOutput, routing, e);
            Nd4j.gemm(gradY, block(rowActivation, routing, e), gradDown, true, false, 1.0, 0.0);
            Nd4j.gemm(gradY, param(MoeMixer.expertDown(e)), block(gradRowHidden, routing, e), false, false, 1.0, 0.0);
        }
        gradRowHidden.muli(f.rowHidden).muli(2.0);                                                // relu² derivative
        INDArray gradRowInput = Nd4j.createUninitialized(type, f.rowInput.shape());
        for (int e = 0; e < experts; e++) {
            INDArray gradUp = gradient(gradients, MoeMixer.expertUp(e));
            if (routing.count(e) == 0) {
                gradUp.assign(0);
                continue;
            }
            INDArray gradH = block(gradRowHidden, routing, e);
            Nd4j.gemm(gradH, block(f.rowInput, routing, e), gradUp, true, false, 1.0, 0.0);
            Nd4j.gemm(gradH, param(MoeMixer.expertUp(e)), block(gradRowInput, routing, e), false, false, 1.0, 0.0);
        }
        INDArray gradExpertInput = sumChoices(gradRowInput, routing);                                // [n, in]
        if (config.hasLatentMoe()) {
            Nd4j.gemm(gradExpertInput, f.input, gradient(gradients, MoeMixer.FC1_LATENT), true, false, 1.0, 0.0);
            Nd4j.gemm(gradExpertInput, param(MoeMixer.FC1_LATENT), gradInput, false, false, 1.0, 1.0);
        } else {
            gradInput.addi(gradExpertInput);
        }

        // router: weights depend on the sigmoid scores; the top-k choice is constant
        INDArray gradLogits = Nd4j.create(routing.logitGradient(weightGradient),
                new long[]{routing.tokens, experts}, DataType.DOUBLE).castTo(type);
        Nd4j.gemm(gradLogits, f.input, gradient(gradients, MoeMixer.GATE), true, false, 1.0, 0.0);
        Nd4j.gemm(gradLogits, param(MoeMixer.GATE), gradInput, false, false, 1.0, 1.0);
        gradient(gradients, MoeMixer.CORRECTION_BIAS).assign(0);
        return gradInput;
    }

    /** {@code out_t = Σ_s rows[rowOfChoice[s][t]]}: each token's sum over its k dispatch rows. */
    private static INDArray sumChoices(INDArray rows, MoeRouting routing) {
        INDArray out = Nd4j.pullRows(rows, 1, routing.rowOfChoice[0]);
        for (int s = 1; s < routing.k; s++) {
            out.addi(Nd4j.pullRows(rows, 1, routing.rowOfChoice[s]));
        }
        return out;
    }

    /** Expert e's contiguous block of dispatch rows (a view). */
    private static INDArray block(INDArray rows, MoeRouting routing, int e) {
        return rows.get(NDArrayIndex.interval(routing.expertStart[e], routing.expertStart[e + 1]), NDArrayIndex.all());
    }

    private static INDArray column(double[] values, DataType type) {
        return Nd4j.create(values, new long[]{values.length, 1}, DataType.DOUBLE).castTo(type);
    }

}
