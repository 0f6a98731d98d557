package org.dl4jmtp.config;

import static org.dl4jmtp.config.BlockType.ATTENTION;
import static org.dl4jmtp.config.BlockType.MAMBA;
import static org.dl4jmtp.config.BlockType.MLP;
import static org.dl4jmtp.config.BlockType.MOE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

/** Pattern symbols, names of both schemes, and pattern parsing errors. */
class MtpLayerPatternTest {

    @Test
    void symbolsAndNames() {
        assertEquals('M', MAMBA.symbol());
        assertEquals('*', ATTENTION.symbol());
        assertEquals('-', MLP.symbol());
        assertEquals('E', MOE.symbol());
        assertEquals(List.of("mamba", "attention", "mlp", "moe"),
                List.of(MAMBA.hfName(), ATTENTION.hfName(), MLP.hfName(), MOE.hfName()));
        for (BlockType t : BlockType.values()) {
            assertEquals(t, BlockType.fromSymbol(t.symbol()));
            assertEquals(t, BlockType.fromHfName(t.hfName()));
        }
    }

    @Test
    void fromHfNameAcceptsBothSchemes() {
        assertEquals(MAMBA, BlockType.fromHfName("linear_attention"));
        assertEquals(ATTENTION, BlockType.fromHfName("full_attention"));
        assertEquals(MAMBA, BlockType.fromHfName("mamba"));
        assertEquals(ATTENTION, BlockType.fromHfName("attention"));
        assertEquals(MLP, BlockType.fromHfName("mlp"));
        assertEquals(MOE, BlockType.fromHfName("moe"));
    }

    @Test
    void fromHfNameRejectsUnknownNamingValueAndAcceptedNames() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BlockType.fromHfName("sliding_attention"));
        assertTrue(e.getMessage().contains("'sliding_attention'"), e.getMessage());
        for (String name : List.of("mamba", "linear_attention", "attention", "full_attention", "mlp", "moe")) {
            assertTrue(e.getMessage().contains("'" + name + "'"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> BlockType.fromHfName(null));
    }

    @Test
    void fromSymbolRejectsUnknownWithValidSet() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BlockType.fromSymbol('X'));
        assertTrue(e.getMessage().contains("'X'"), e.getMessage());
        assertTrue(e.getMessage().contains("['*', '-', 'E', 'M']"), e.getMessage());
    }

    @Test
    void parseAndToPatternRoundTrip() {
        List<BlockType> types = MtpLayerPattern.parse("M*ME-M");
        assertEquals(List.of(MAMBA, ATTENTION, MAMBA, MOE, MLP, MAMBA), types);
        assertEquals("M*ME-M", BlockType.toPattern(types));
        assertEquals(List.of(ATTENTION, MOE), MtpLayerPattern.parse("*E"));
        assertEquals("", BlockType.toPattern(List.of()));
    }

    @Test
    void emptyPatternIsRejected() {
        assertEquals("MTP layer pattern is empty",
                assertThrows(IllegalArgumentException.class, () -> MtpLayerPattern.parse("")).getMessage());
        assertEquals("MTP layer pattern is empty",
                assertThrows(IllegalArgumentException.class, () -> MtpLayerPattern.parse(null)).getMessage());
        assertEquals("hybrid_override_pattern is empty",
                assertThrows(IllegalArgumentException.class, () -> MtpLayerPattern.parseBackbone("")).getMessage());
    }

    @Test
    void unknownSymbolNamesSymbolPositionAndValidSet() {
        String msg = assertThrows(IllegalArgumentException.class, () -> MtpLayerPattern.parse("*Ex")).getMessage();
        assertTrue(msg.contains("'x'"), msg);
        assertTrue(msg.contains("position 2"), msg);
        assertTrue(msg.contains("['*', '-', 'E', 'M']"), msg);
        assertTrue(msg.contains("MTP layer pattern"), msg);

        msg = assertThrows(IllegalArgumentException.class, () -> MtpLayerPattern.parseBackbone("M*M/E")).getMessage();
        assertTrue(msg.contains("'/'"), msg);
        assertTrue(msg.contains("position 3"), msg);
        assertTrue(msg.contains("hybrid_override_pattern"), msg);
        assertTrue(msg.contains("['*', '-', 'E', 'M']"), msg);
    }

    @Test
    void lowercaseAndWhitespaceAreNotSymbols() {
        assertThrows(IllegalArgumentException.class, () -> MtpLayerPattern.parse("*e"));
        assertThrows(IllegalArgumentException.class, () -> MtpLayerPattern.parse(" *E"));
    }

    @Test
    void parsedListIsUnmodifiable() {
        List<BlockType> types = MtpLayerPattern.parse("*E");
        assertThrows(UnsupportedOperationException.class, () -> types.add(MAMBA));
    }
}
