package org.dl4jmtp.spark;

import org.apache.spark.SparkConf;
import org.apache.spark.serializer.JavaSerializer;
import org.apache.spark.serializer.SerializerInstance;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.GradientNormalization;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.updater.graph.ComputationGraphUpdater;
import org.deeplearning4j.spark.api.worker.NetBroadcastTuple;
import org.dl4jmtp.config.MtpConfig;
import org.dl4jmtp.config.NemotronV3Config;
import org.dl4jmtp.layers.LayerRuntime;
import org.dl4jmtp.model.NemotronV3ForCausalLM;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

import java.nio.ByteBuffer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every custom layer, vertex, preprocessor and the MTP loss layer survive the way Spark ships a model to its workers:
 * DL4J's training masters broadcast the configuration object, the parameters and the updater state as a
 * {@link NetBroadcastTuple} (Java serialisation through Spark's {@link JavaSerializer}), and a worker builds its graph
 * from a clone of the configuration ({@code ParameterAveragingTrainingWorker}, {@code SharedTrainingWorker}); the
 * configuration's JSON form (checkpoints, {@code SharedTrainingMaster.toJson}) must read back the same too. The shipped
 * graph must compute and train exactly as the original: same outputs, same score, same parameters after an Adam step.
 */
class SparkShippingRoundTripTest {

    /** Every block type (Mamba2, attention, dense MLP, MoE) in the backbone and in the MTP depths. */
    private static NemotronV3Config everyBlockConfig() {
        return NemotronV3Config.fromJsonString("{\"model_type\": \"nemotron_h\", \"vocab_size\": 64, \"hidden_size\": 16,"
                + "\"hybrid_override_pattern\": \"M*-E\", \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
                + "\"head_dim\": 8, \"mamba_num_heads\": 2, \"mamba_head_dim\": 8, \"ssm_state_size\": 4,"
                + "\"n_groups\": 1, \"conv_kernel\": 4, \"chunk_size\": 4, \"intermediate_size\": 24,"
                + "\"n_routed_experts\": 4, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 8,"
                + "\"moe_shared_expert_intermediate_size\": 16, \"n_shared_experts\": 1, \"routed_scaling_factor\": 2.5,"
                + "\"norm_topk_prob\": true, \"num_nextn_predict_layers\": 2, \"mtp_hybrid_override_pattern\": \"*-E\"}");
    }

    static Stream<Arguments> graphs() {
        return Stream.of(
                Arguments.of(LayerRuntime.EXPLICIT, false, true),
                Arguments.of(LayerRuntime.EXPLICIT, true, false),
                Arguments.of(LayerRuntime.SAMEDIFF, false, false),
                Arguments.of(LayerRuntime.SAMEDIFF, true, true));
    }

    @ParameterizedTest(name = "{0} runtime, MTP repeated {1}, document ids in labels {2}")
    @MethodSource("graphs")
    void theShippedGraphComputesAndTrainsAsTheOriginal(LayerRuntime runtime, boolean repeated, boolean documentIds)
            throws Exception {
        NemotronV3Config config = everyBlockConfig();
        MtpConfig mtp = MtpConfig.fromHf(config, 0.3, 2, repeated);
        ComputationGraph original = NemotronV3ForCausalLM.graphBuilder(config, mtp, documentIds)
                .dataType(DataType.DOUBLE).seed(3).runtime(runtime).updater(new Adam(1e-2))
                .gradientNormalization(GradientNormalization.ClipL2PerLayer, 1.0)
                .build();
        MultiDataSet batch = batch(documentIds);
        original.fit(batch);                                 // non-zero Adam state, iteration count 1

        ComputationGraphConfiguration conf = original.getConfiguration();
        assertEquals(conf.toJson(), ComputationGraphConfiguration.fromJson(conf.toJson()).toJson(), "JSON round trip");

        // what a training master broadcasts, through Spark's serializer, and what a worker builds from it
        NetBroadcastTuple sent = new NetBroadcastTuple(conf, original.params(), original.getUpdater().getStateViewArray());
        SerializerInstance serializer = new JavaSerializer(new SparkConf()).newInstance();
        scala.reflect.ClassTag<NetBroadcastTuple> tag = scala.reflect.ClassTag$.MODULE$.apply(NetBroadcastTuple.class);
        ByteBuffer bytes = serializer.serialize(sent, tag);
        NetBroadcastTuple received = serializer.deserialize(bytes, tag);
        assertEquals(conf.toJson(), received.getGraphConfiguration().toJson(), "configuration after shipping");
        ComputationGraph worker = new ComputationGraph(received.getGraphConfiguration().clone());
        worker.init(received.getParameters().unsafeDuplication(), false);
        worker.setUpdater(new ComputationGraphUpdater(worker, received.getUpdaterState().unsafeDuplication()));
        // DL4J's clone() drops the iteration count (the schedule and Adam's bias correction would restart at 0)
        assertEquals(0, worker.getConfiguration().getIterationCount());
        IterationCountRestorer restorer = new IterationCountRestorer();
        restorer.roundStartsAfter(1);
        worker.setListeners(restorer);
        INDArray[] expected = original.output(false, batch.getFeatures(), null);
        INDArray[] actual = worker.output(false, batch.getFeatures(), null);
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], "output " + i);
        }
        assertEquals(original.score(batch), worker.score(batch), 0.0, "score");

        MultiDataSet next = batch(documentIds);
        original.fit(next);
        worker.fit(next);
        assertNotEquals(received.getParameters(), worker.params(), "the step changed the parameters");
        assertEquals(original.params(), worker.params(), "parameters after one more Adam step");
        assertEquals(original.getUpdater().getStateViewArray(), worker.getUpdater().getStateViewArray(), "Adam state");
        assertEquals(2, worker.getConfiguration().getIterationCount());
        assertTrue(original.params().length() > 1000);
    }

    private static MultiDataSet batch(boolean documentIds) {
        int rows = 2;
        int t = 8;
        INDArray tokens = Nd4j.rand(DataType.DOUBLE, rows, 1, t).muli(64).castTo(DataType.INT32).castTo(DataType.DOUBLE);
        INDArray next = Nd4j.rand(DataType.DOUBLE, rows, 1, t).muli(64).castTo(DataType.INT32).castTo(DataType.DOUBLE);
        INDArray labels = next;
        if (documentIds) {
            INDArray docs = Nd4j.zeros(DataType.DOUBLE, rows, 1, t);
            docs.get(org.nd4j.linalg.indexing.NDArrayIndex.all(), org.nd4j.linalg.indexing.NDArrayIndex.all(),
                    org.nd4j.linalg.indexing.NDArrayIndex.interval(5, t)).assign(1);
            labels = Nd4j.concat(1, next, docs);
        }
        return new org.nd4j.linalg.dataset.MultiDataSet(new INDArray[]{tokens}, new INDArray[]{labels});
    }
}
