package org.dl4jmtp.model;

import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.domain.JavaMethodCall;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataBuffer;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;
import java.util.Set;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/**
 * A training step must run on a device backend (CUDA) without copying float tensors to the host: the classes on its
 * hot path may not read or write an INDArray element by element. What comes back to the host is bounded by scalars
 * (reductions such as {@code sumNumber()}, which this rule allows) and by the MoE routing, named in
 * {@link #ROUTING_EXCEPTIONS}.
 */
class HotPathHostReadsTest {

    /** The classes a training step runs (nested classes included), each with why it is on the path. */
    private static final List<String> HOT_PATH = List.of(
            // the explicit block layer: forward and explicit backprop of every backbone block
            "org.dl4jmtp.block.ExplicitBlock",
            "org.dl4jmtp.block.RowBlock",
            "org.dl4jmtp.layers.RowMixer",
            "org.dl4jmtp.layers.rows.RowRmsNorm",
            "org.dl4jmtp.layers.rows.TokenRows",
            "org.dl4jmtp.layers.rows.ColumnSums",
            "org.dl4jmtp.attention.TriangularMask",
            "org.dl4jmtp.attention.CausalAttention",
            "org.dl4jmtp.attention.BlockedAttention",
            "org.dl4jmtp.mamba2.ChunkedMamba2",
            "org.dl4jmtp.moe.SparseMoe",
            "org.dl4jmtp.moe.MoeRouting",
            "org.dl4jmtp.mlp.Relu2Mlp",
            // packed documents: segment numbers, the masks made from them and the layers that pass them on
            "org.dl4jmtp.layers.Documents",
            "org.dl4jmtp.layers.TokenEmbeddingLayer",
            "org.dl4jmtp.graph.DocumentMergeVertex",
            // the weight-tied MTP depth: fusion, its sublayer blocks and final norm, once per iteration
            "org.dl4jmtp.mtp.ExplicitMtpDepth",
            // the activation/backprop plumbing of the block and the MTP depth
            "org.dl4jmtp.layers.RowForwardLayer",
            // the MTP depths' norms, projections and time slices (RmsNorm, Linear, TimeSlice runtimes)
            "org.dl4jmtp.layers.ExplicitSequenceLayer",
            // ids → [mb, 1, (1+D)·T] in front of the shared embedding, every step
            "org.dl4jmtp.mtp.MtpInputIdsPreProcessor",
            // the LM head and MTP loss: score and gradient of every step
            "org.dl4jmtp.losses.MtpHeadLoss",
            "org.dl4jmtp.losses.MtpLossRuntimeLayer",
            // input and label conversion and checks of every batch
            "org.dl4jmtp.model.TokenIds",
            // data-parallel steps: gradient sums, the shared update and the work split
            "org.dl4jmtp.model.DataParallelGraph",
            "org.dl4jmtp.model.ParallelBlockUpdater",
            "org.dl4jmtp.model.SharedWork",
            // the expert counts of every step and the expert-bias balancing after it
            "org.dl4jmtp.moe.ExpertCounts",
            "org.dl4jmtp.moe.ExpertBiasBalancing",
            "org.dl4jmtp.model.ExpertLoad");

    /**
     * Methods that may copy arrays to the host: the MoE routing, which the sparse dispatch needs there (the token lists
     * that decide which rows each expert's GEMMs read). It reads the n·E router scores and the E biases (forward) and
     * the n·k routing-weight gradients (backward) rather than only the n·k chosen expert ids: a routing computed on the
     * device (k argmax rounds under masks, weights and their gradient from one-hot masks) was measured 13 % slower per
     * small-preset training step on the CPU (3,595 against 4,241 tokens/s, 4 Dec), so the host routing stays until a
     * device routing is as fast.
     */
    private static final Set<String> ROUTING_EXCEPTIONS = Set.of(
            "org.dl4jmtp.moe.SparseMoe.forward",
            "org.dl4jmtp.moe.SparseMoe.backward");

    /** Element-wise reads and writes of INDArray and copies of a whole DataBuffer into a Java array. */
    private static final Set<String> ELEMENT_ACCESSORS = Set.of(
            "getDouble", "getFloat", "getInt", "getLong", "getNumber", "putScalar", "element",
            "toDoubleVector", "toFloatVector", "toIntVector", "toLongVector",
            "toDoubleMatrix", "toFloatMatrix", "toIntMatrix", "toLongMatrix",
            "asDouble", "asFloat", "asInt", "asLong", "asBytes", "asNio");

    @Test
    void hotPathClassesDoNotAccessArrayElementsOnTheHost() {
        JavaClasses classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("org.dl4jmtp");
        noClasses().that(onHotPath()).should().callMethodWhere(elementAccessOutsideRouting())
                .because("a training step must not copy tensors to the host (issue 16)")
                .check(classes);
    }

    private static DescribedPredicate<JavaClass> onHotPath() {
        return DescribedPredicate.describe("are on the training hot path", c -> HOT_PATH.stream()
                .anyMatch(name -> c.getName().equals(name) || c.getName().startsWith(name + "$")));
    }

    private static DescribedPredicate<JavaMethodCall> elementAccessOutsideRouting() {
        return DescribedPredicate.describe("a per-element INDArray/DataBuffer accessor (outside the MoE routing)", call -> {
            JavaClass owner = call.getTarget().getOwner();
            boolean array = owner.isAssignableTo(INDArray.class) || owner.isAssignableTo(DataBuffer.class);
            String origin = call.getOrigin().getOwner().getName() + "." + call.getOrigin().getName();
            return array && ELEMENT_ACCESSORS.contains(call.getTarget().getName()) && !ROUTING_EXCEPTIONS.contains(origin);
        });
    }
}
