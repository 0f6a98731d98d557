package org.dl4jmtp.block;

import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.samediff.SDLayerParams;
import org.nd4j.common.util.ArrayUtil;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parameters of an {@link ExplicitBlockLayer}: the keys and shapes that the SameDiff block of the same type declares
 * ({@code NemotronV3Block.defineParameters}), so both implementations share one parameter layout and initialisation;
 * weights first, then biases, each a c-order view of the layer's flat array.
 */
public final class ExplicitBlockParamInitializer implements ParamInitializer {

    private static final ExplicitBlockParamInitializer INSTANCE = new ExplicitBlockParamInitializer();

    public static ExplicitBlockParamInitializer getInstance() {
        return INSTANCE;
    }

    private static SDLayerParams layout(Layer layer) {
        SDLayerParams params = new SDLayerParams();
        ((ExplicitBlockLayer) layer).block().defineParameters(params, "");
        return params;
    }

    @Override
    public long numParams(NeuralNetConfiguration conf) {
        return numParams(conf.getLayer());
    }

    @Override
    public long numParams(Layer layer) {
        long total = 0;
        for (long[] shape : layout(layer).getParamShapes().values()) {
            total += ArrayUtil.prodLong(shape);
        }
        return total;
    }

    @Override
    public List<String> paramKeys(Layer layer) {
        return layout(layer).getParameterKeys();
    }

    @Override
    public List<String> weightKeys(Layer layer) {
        return layout(layer).getWeightParameterKeys();
    }

    @Override
    public List<String> biasKeys(Layer layer) {
        return layout(layer).getBiasParameterKeys();
    }

    @Override
    public boolean isWeightParam(Layer layer, String key) {
        return layout(layer).isWeightParam(key);
    }

    @Override
    public boolean isBiasParam(Layer layer, String key) {
        return layout(layer).isBiasParam(key);
    }

    @Override
    public Map<String, INDArray> init(NeuralNetConfiguration conf, INDArray paramsView, boolean initializeParams) {
        Map<String, INDArray> params = views(conf.getLayer(), paramsView);
        if (initializeParams) {
            ((ExplicitBlockLayer) conf.getLayer()).block().initializeParameters(params, "");
        }
        return params;
    }

    @Override
    public Map<String, INDArray> getGradientsFromFlattened(NeuralNetConfiguration conf, INDArray gradientView) {
        return views(conf.getLayer(), gradientView);
    }

    private Map<String, INDArray> views(Layer layer, INDArray flat) {
        SDLayerParams layout = layout(layer);
        long expected = numParams(layer);
        if (flat.length() != expected) {
            throw new IllegalArgumentException("Layer " + layer.getLayerName() + ": flat parameter array has "
                    + flat.length() + " values, expected " + expected);
        }
        Map<String, INDArray> out = new LinkedHashMap<>();
        long offset = 0;
        for (String key : layout.getParameterKeys()) {
            long[] shape = layout.getParamShapes().get(key);
            long length = ArrayUtil.prodLong(shape);
            // sliced as DL4J's own initializers do (the flat array is a [1, N] row); other slicings give views whose
            // offset and data buffer disagree in M2.1
            INDArray slice = flat.rank() == 2
                    ? flat.get(NDArrayIndex.interval(0, 0, true), NDArrayIndex.interval(offset, offset + length))
                    : flat.get(NDArrayIndex.interval(offset, offset + length));
            out.put(key, slice.reshape('c', shape));
            offset += length;
        }
        return out;
    }
}
