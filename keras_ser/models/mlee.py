"""The MLEE paper's encoder and its conventional dominant-emotion classifier.

Ando et al., "Speech emotion recognition based on multi-label emotion existence model"
(Interspeech 2019), Figure 1 / Table 2:

    log power spectrogram (frames, 400), z-normalised with training-set statistics
    Conv 16 [12x16] stride [2x2] → BN → ReLU → MaxPool 2x2
    Conv 24 [8x12]               → BN → ReLU → MaxPool 2x2
    Conv 32 [5x7]                → BN → ReLU → MaxPool 2x2
    BLSTM (1 layer, 128 per direction) → structured self-attention (1 head)
    Dense 64 (ReLU) → Dense K

Kernel sizes are (time x frequency). Every block re-applies the time mask from `num_frames`, so
padded frames never leak into real ones through batch-norm shifts: padded and unpadded inputs
give the same outputs (tested). Time is downsampled 16x (`ceil` at each step).

Inputs: `features` `(batch, frames, 400)` (un-normalised; the model holds the statistics) and
`num_frames` `(batch,)`. Outputs: `emotion` `(batch, K)` (softmax probabilities for the dominant
task, sigmoid existence probabilities with `activation="sigmoid"`), and `attention`
`(batch, heads, frames / 16)` when `return_attention=True`.

Example:
>>> model = build_mlee_classifier(num_classes=4, feature_dim=400)
>>> sorted(model.output_names) if hasattr(model, "output_names") else None  # doctest: +SKIP
"""

import keras

from keras_ser.layers import (
    ApplyTimeMask,
    ChannelAugment,
    DownsampleLengths,
    LengthMask,
    MaskedNormalization,
    SpecAugment,
    StructuredSelfAttention,
)

CONV_BLOCKS = ((16, (12, 16), (2, 2)), (24, (8, 12), (1, 1)), (32, (5, 7), (1, 1)))


def build_mlee_encoder(feature_dim=400, mean=None, std=None, conv_blocks=CONV_BLOCKS, lstm_units=128,
                       attention_units=64, attention_heads=1, dropout=0.0, bn_momentum=0.9, spec_augment=None,
                       channel_augment=None, name="mlee_encoder"):
    """The CNN + BLSTM + self-attention encoder as a Keras model.

    Args:
        feature_dim: int. Feature size (400 for the MLEE frontend).
        mean, std: array-like `(feature_dim,)` training-set statistics (identity when None).
        conv_blocks: tuple of `(filters, (k_time, k_freq), (s_time, s_freq))`.
        lstm_units: int. BLSTM units per direction. Defaults to 128.
        attention_units: int. Self-attention hidden size. Defaults to 64.
        attention_heads: int. Attention hops. Defaults to 1.
        dropout: float. Dropout on the utterance vector. Defaults to 0.
        bn_momentum: float. Batch-norm moving-average momentum. The paper does not give it; 0.9
            (PyTorch's default) rather than Keras's 0.99, because with the few hundred steps of a
            small corpus the 0.99 averages have not converged: on the synthetic demo fold, dev
            loss 0.80 vs 1.15 and test WA 0.625 vs 0.45 (docs/results/mlee.md).
        spec_augment: None, or a dict of `keras_ser.layers.SpecAugment` arguments (`{}`: its
            defaults, 8-bin frequency masks, narrow for 400 bins): frequency and time masks on the
            normalised spectrogram in training only. Not in the paper or its code.
        channel_augment: None, or a dict of `keras_ser.layers.ChannelAugment` arguments (`{}`:
            its defaults): a random smooth gain curve over the bins added to each training
            utterance's log spectrogram before the normalisation. Not in the paper or its code.

    Returns:
        Model `{features, num_frames}` → `{"embedding": (batch, heads * 2 * lstm_units),
        "attention": (batch, heads, frames')}`.
    """
    features = keras.Input((None, feature_dim), name="features")
    num_frames = keras.Input((), dtype="int32", name="num_frames")
    x = features
    if channel_augment is not None:
        x = ChannelAugment(**dict(channel_augment), name="channel_augment")(x, num_frames)
    x = MaskedNormalization(mean=mean, std=std, dim=feature_dim, name="normalization")(x, num_frames)
    if spec_augment is not None:
        x = SpecAugment(**dict(spec_augment), name="spec_augment")(x, num_frames)
    x = keras.layers.Reshape((-1, feature_dim, 1), name="add_channel")(x)
    n = num_frames
    for i, (filters, kernel, strides) in enumerate(conv_blocks, 1):
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", name=f"conv{i}")(x)
        if strides[0] > 1:
            n = DownsampleLengths(strides[0], name=f"lengths_conv{i}")(n)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = ApplyTimeMask(name=f"mask{i}")(x, n)
        x = keras.layers.MaxPooling2D((2, 2), padding="same", name=f"pool{i}")(x)
        n = DownsampleLengths(2, name=f"lengths_pool{i}")(n)
    freq = x.shape[2]
    x = keras.layers.Reshape((-1, freq * x.shape[3]), name="flatten_freq")(x)
    mask = LengthMask(name="time_mask")(x, n)
    h = keras.layers.Bidirectional(keras.layers.LSTM(lstm_units, return_sequences=True), name="blstm")(x, mask=mask)
    pooled, weights = StructuredSelfAttention(attention_units, attention_heads, name="self_attention")(h, mask)
    if dropout:
        pooled = keras.layers.Dropout(dropout, name="dropout")(pooled)
    return keras.Model({"features": features, "num_frames": num_frames},
                       {"embedding": pooled, "attention": weights}, name=name)


def build_mlee_classifier(num_classes=4, feature_dim=400, mean=None, std=None, hidden_units=64,
                          activation="softmax", return_attention=False, encoder=None, name="mlee",
                          encoder_name="mlee_encoder", **encoder_kwargs):
    """Encoder(s) + classifier (Dense 64 → Dense K).

    One fresh encoder gives the conventional dominant-emotion model (softmax) or the MLEE-only
    model (sigmoid). Prebuilt encoders give the MLEE pre-training recipes: pass the trained MLEE
    encoder, frozen, for "MLEE pre-training", or a list `[dominant, mlee]` of frozen encoders for
    "MLEE pre-training fusion" (their utterance vectors are concatenated).

    Args:
        num_classes: int. K.
        feature_dim: int.
        mean, std: training-set feature statistics (for a fresh encoder).
        hidden_units: int. Defaults to 64.
        activation: str. "softmax" (dominant hard/soft targets) or "sigmoid" (MLEE existence).
        return_attention: bool. Also output the attention weights as `attention`
            `(batch, heads, frames')`; with several encoders their heads are stacked in order.
        encoder: None, an encoder model, or a list of encoder models (distinct names).
        encoder_name: str. Name of a fresh encoder.
        **encoder_kwargs: passed to `build_mlee_encoder` for a fresh encoder.

    Returns:
        Model `{features, num_frames}` → `{"emotion": (batch, K)[, "attention"]}`.
    """
    if encoder is None:
        encoder = build_mlee_encoder(feature_dim, mean, std, name=encoder_name, **encoder_kwargs)
    encoders = list(encoder) if isinstance(encoder, (list, tuple)) else [encoder]
    if len({e.name for e in encoders}) != len(encoders):
        raise ValueError(f"encoders need distinct names, got {[e.name for e in encoders]}")
    features = keras.Input((None, feature_dim), name="features")
    num_frames = keras.Input((), dtype="int32", name="num_frames")
    encoded = [e({"features": features, "num_frames": num_frames}) for e in encoders]
    if len(encoded) == 1:
        embedding, attention = encoded[0]["embedding"], encoded[0]["attention"]
    else:
        embedding = keras.layers.Concatenate(name="fusion")([e["embedding"] for e in encoded])
        attention = keras.layers.Concatenate(axis=1, name="stack_attention")([e["attention"] for e in encoded])
    x = keras.layers.Dense(hidden_units, activation="relu", name="hidden")(embedding)
    # Heads stay float32 under a mixed-precision policy, so losses and exports are float32.
    out = keras.layers.Dense(num_classes, activation=activation, dtype="float32", name="emotion")(x)
    outputs = {"emotion": out}
    if return_attention:
        outputs["attention"] = keras.layers.Activation("linear", dtype="float32", name="attention")(attention)
    return keras.Model({"features": features, "num_frames": num_frames}, outputs, name=name)


def find_encoders(model):
    """The encoder sub-models of a classifier built by `build_mlee_classifier`, in order."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name.endswith("encoder")]
