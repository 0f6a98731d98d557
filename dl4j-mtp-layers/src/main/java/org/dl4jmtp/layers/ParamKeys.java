package org.dl4jmtp.layers;

/**
 * Parameter keys of our layers are the HF names with {@code '_'} written as {@code '-'} ({@code mixer.in-proj.weight}
 * for HF {@code mixer.in_proj.weight}): DL4J's updater splits a gradient key {@code <layer>_<param>} at its LAST
 * underscore, so a parameter key must not contain one. The mapping is 1:1 because HF names never contain '-'.
 */
public final class ParamKeys {

    private ParamKeys() {
    }

    /** The DL4J parameter key of an HF parameter name. */
    public static String of(String hfName) {
        return hfName.replace('_', '-');
    }

    /** The HF parameter name of a DL4J parameter key. */
    public static String toHf(String paramKey) {
        return paramKey.replace('-', '_');
    }
}
