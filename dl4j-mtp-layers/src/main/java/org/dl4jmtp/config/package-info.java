/**
 * Model and MTP configuration: {@link org.dl4jmtp.config.NemotronV3Config} (HF {@code config.json} of
 * {@code model_type = "nemotron_h"}), {@link org.dl4jmtp.config.MtpConfig} (Multi-Token Prediction training settings),
 * {@link org.dl4jmtp.config.BlockType} and {@link org.dl4jmtp.config.MtpLayerPattern} (layer patterns such as
 * {@code "M*ME-M"} / {@code "*E"}) and {@link org.dl4jmtp.config.MtpLossNormalization}.
 */
package org.dl4jmtp.config;
