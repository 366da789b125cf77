"""FG_CME: fine-grained cross-modality excitation of audio and text (PAPERS.md §4).

    features (40-d log filterbank, 25/10 ms), z-normalised
    acoustic: Conv1D 64 (k 5) → Conv1D 128 (k 2) → Conv1D 128 (k 2), stride 1, valid padding
    alignment pooling: per word, mean and max of the conv frames inside its interval → Za (256)
    semantic: word embeddings (GloVe 300-d or trainable) → linear W_s → Zs (256)
    CME: Ẑa = σ(W_e Zs) ⊙ Za, Ẑs = σ(W_a Za) ⊙ Zs
    concat → BiLSTM(256) over the words → max over the words → Dense 128 (ReLU) → Dense K softmax

`spec_augment` (a dict of `keras_ser.layers.SpecAugment` arguments, e.g. `{}` for its defaults)
masks the normalised features in training; neither the paper nor its code augments.
`channel_augment` (a dict of `keras_ser.layers.ChannelAugment` arguments, `{}` for its defaults)
adds a random smooth gain curve over the bands to each training utterance's log features (a
random microphone and room); with `data.normalization` speaker or utterance the features arrive
standardised, and the curve is then in standard deviations. Not in the paper or its code.
`utterance_norm` ("mean" or "meanvar") adds per-utterance normalisation after the training-set
z-normalisation; neither the paper nor its code has it (the code: "no CMVN").

The paper does not give the convolutions' activations; ReLU is the default here, and
`conv_activation=None` is the original code's (no non-linearity between them). The code's other
differences are options: `widen=3` (each word widened by ±3 frames), `residual=True` and
`acoustic_gate="word_id"` (its v2 gates). Empty words pool to zeros (the code: -1e6 in the max).

Inputs, all named (the export serves audio + words + word boundaries):
    features (batch, frames, 40), num_frames (batch,), word_ids (batch, words) int32 (0 = padding,
    1 = out of vocabulary), word_starts / word_ends (batch, words) seconds, num_words (batch,).
Output: `{"emotion": (batch, K)}`.
"""

import keras

from keras_ser.layers import (
    ChannelAugment,
    MaskedNormalization,
    SpecAugment,
    StructuredSelfAttention,
    UtteranceNormalization,
)
from keras_ser.layers.fusion import (
    AlignmentPooling,
    CrossModalityExcitation,
    MaskedMax,
    WordAlignment,
)
from keras_ser.layers.masking import ApplyTimeMask, LengthMask, MaskedMeanStd, ShrinkLengths


def normalise(features, num_frames, mean, std, feature_dim, spec_augment=None, utterance_norm=None,
              channel_augment=None):
    """A random channel in training when asked (`ChannelAugment`, on the log features), then
    z-normalisation with the training statistics, then per-utterance normalisation ("mean" or
    "meanvar") when asked, then SpecAugment in training when asked."""
    if channel_augment is not None:
        features = ChannelAugment(**dict(channel_augment), name="channel_augment")(features, num_frames)
    x = MaskedNormalization(mean=mean, std=std, dim=feature_dim, name="normalization")(features, num_frames)
    if utterance_norm is not None:
        x = UtteranceNormalization(utterance_norm, name="utterance_normalization")(x, num_frames)
    if spec_augment is not None:
        x = SpecAugment(**dict(spec_augment), name="spec_augment")(x, num_frames)
    return x


def build_fg_cme(num_classes=4, feature_dim=40, vocab_size=2, embedding_dim=300, embeddings=None,
                 train_embeddings=True, mean=None, std=None, conv_filters=(64, 128, 128), conv_kernels=(5, 2, 2),
                 conv_activation="relu", semantic_units=256, lstm_units=256, hidden_units=128, dropout=0.0,
                 excite_acoustic=True, excite_semantic=True, residual=False, acoustic_gate="semantic", widen=0,
                 spec_augment=None, utterance_norm=None, channel_augment=None, hop_s=0.01, win_s=0.025,
                 name="fg_cme"):
    """The FG_CME model (see the module docstring for the inputs and the paper/code options).

    Args:
        vocab_size: int. Vocabulary size including padding (0) and OOV (1).
        embeddings: optional `(vocab_size, embedding_dim)` initial matrix (GloVe).
        train_embeddings: bool. Fine-tune the embeddings.
        excite_acoustic, excite_semantic: the ablations (both False = without excitation).
        utterance_norm: None (the paper: training-set z-normalisation only), "mean" or "meanvar":
            also normalise each utterance by its own frames (`UtteranceNormalization`).
    """
    features = keras.Input((None, feature_dim), name="features")
    num_frames = keras.Input((), dtype="int32", name="num_frames")
    word_ids = keras.Input((None,), dtype="int32", name="word_ids")
    word_starts = keras.Input((None,), name="word_starts")
    word_ends = keras.Input((None,), name="word_ends")
    num_words = keras.Input((), dtype="int32", name="num_words")

    x = normalise(features, num_frames, mean, std, feature_dim, spec_augment, utterance_norm, channel_augment)
    for i, (f, k) in enumerate(zip(conv_filters, conv_kernels), 1):
        x = keras.layers.Conv1D(f, k, padding="valid", activation=conv_activation, name=f"conv{i}")(x)
    shrink = sum(k - 1 for k in conv_kernels)
    conv_frames = ShrinkLengths(shrink, name="conv_frames")(num_frames)
    align = WordAlignment(hop_s, win_s, centre_offset=shrink // 2, widen=widen, name="alignment")(
        word_starts, word_ends, num_words, conv_frames, x)
    za = AlignmentPooling(name="alignment_pooling")(x, align)

    init = keras.initializers.Constant(embeddings) if embeddings is not None else "uniform"
    emb = keras.layers.Embedding(vocab_size, embedding_dim, embeddings_initializer=init, trainable=train_embeddings,
                                 name="embedding")(word_ids)
    zs = keras.layers.Dense(semantic_units, name="semantic_projection")(emb)

    cme = CrossModalityExcitation(excite_acoustic, excite_semantic, residual, acoustic_gate,
                                  vocab_size if acoustic_gate == "word_id" else None, name="cme")
    za_hat, zs_hat = cme(za, zs, word_ids) if acoustic_gate == "word_id" else cme(za, zs)
    h = keras.layers.Concatenate(name="fuse")([za_hat, zs_hat])
    mask = LengthMask(name="word_mask")(h, num_words)
    h = keras.layers.Bidirectional(keras.layers.LSTM(lstm_units, return_sequences=True), name="blstm")(h, mask=mask)
    u = MaskedMax(name="max_over_words")(h, num_words)
    u = keras.layers.Dense(hidden_units, activation="relu", name="fc")(u)
    if dropout:
        u = keras.layers.Dropout(dropout, name="dropout")(u)
    out = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(u)
    inputs = {"features": features, "num_frames": num_frames, "word_ids": word_ids, "word_starts": word_starts,
              "word_ends": word_ends, "num_words": num_words}
    return keras.Model(inputs, {"emotion": out}, name=name)


@keras.saving.register_keras_serializable(package="keras_ser")
class ModalityAttention(keras.layers.Layer):
    """Attention over modalities: `(batch, M, D)` → weighted sum `(batch, D)`, with scores
    `v · tanh(W u_m)` softmaxed over the M modalities (the attention-fusion baseline)."""

    def __init__(self, units=128, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.w = keras.layers.Dense(self.units, activation="tanh", name="w", dtype=self.dtype_policy)
        self.v = keras.layers.Dense(1, use_bias=False, name="v", dtype=self.dtype_policy)

    def build(self, shape):
        self.w.build(shape)
        self.v.build(tuple(shape[:-1]) + (self.units,))

    def call(self, stacked):
        import tensorflow as tf

        weights = tf.nn.softmax(self.v(self.w(stacked)), axis=1)
        return tf.reduce_sum(weights * stacked, axis=1)

    def compute_output_shape(self, shape):
        return (shape[0], shape[2])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def build_baseline(kind, num_classes=4, feature_dim=40, vocab_size=2, embedding_dim=300, embeddings=None,
                   train_embeddings=True, mean=None, std=None, conv_filters=(64, 128, 128), conv_kernels=(5, 2, 2),
                   conv_activation="relu", lstm_units=256, attention_units=128, hidden_units=128, dropout=0.0,
                   spec_augment=None, utterance_norm=None, channel_augment=None, spatial_dropout=0.1, pool_dropout=0.5,
                   functionals_dim=0, functionals_dropout=0.0, name=None):
    """The FG_CME paper's baselines, with FG_CME's inputs and head (FCN 128 → K):

        cnn_lstm               acoustic: the 1-D CNN → BiLSTM → max over frames
        blstm_attention_audio  acoustic: BiLSTM on the features → self-attention pooling
        blstm_attention_text   text: embeddings → BiLSTM → self-attention pooling
        utterance_concat       both: cnn_lstm's and blstm_attention_text's utterance vectors concatenated
        attention_fusion       both: the two utterance vectors weighted by attention over modalities

    and one that is not the paper's, the plain acoustic CNN a practitioner tries first (the
    `fg_cme/ravdess_recipe` preset):

        cnn_pool               acoustic: the 1-D CNN ('same' padding, batch normalisation, ReLU,
                               spatial dropout `spatial_dropout`) → mean and standard deviation
                               over the real frames → dropout `pool_dropout`

    `functionals_dim` > 0 (cnn_pool only; `data.functionals`, not the paper's) adds an input
    `functionals` `(batch, functionals_dim)`: one utterance's openSMILE functionals, standardised
    outside the model (the training pipeline does it per fold), dropout `functionals_dropout`,
    concatenated with the pooled statistics before the head: an early-fusion hybrid.
    """
    features = keras.Input((None, feature_dim), name="features")
    num_frames = keras.Input((), dtype="int32", name="num_frames")
    word_ids = keras.Input((None,), dtype="int32", name="word_ids")
    num_words = keras.Input((), dtype="int32", name="num_words")

    def blstm(x, lengths, tag):
        mask = LengthMask(name=f"{tag}_mask")(x, lengths)
        return keras.layers.Bidirectional(keras.layers.LSTM(lstm_units, return_sequences=True), name=f"{tag}_blstm")(
            x, mask=mask), mask

    def acoustic_cnn_lstm():
        x = normalise(features, num_frames, mean, std, feature_dim, spec_augment, utterance_norm, channel_augment)
        for i, (f, k) in enumerate(zip(conv_filters, conv_kernels), 1):
            x = keras.layers.Conv1D(f, k, padding="valid", activation=conv_activation, name=f"conv{i}")(x)
        n = ShrinkLengths(sum(k - 1 for k in conv_kernels), name="conv_frames")(num_frames)
        h, _ = blstm(x, n, "audio")
        return MaskedMax(name="audio_max")(h, n)

    def acoustic_attention():
        x = normalise(features, num_frames, mean, std, feature_dim, spec_augment, utterance_norm, channel_augment)
        h, mask = blstm(x, num_frames, "audio")
        return StructuredSelfAttention(attention_units, name="audio_attention")(h, mask=mask)[0]

    def acoustic_cnn_pool():
        x = normalise(features, num_frames, mean, std, feature_dim, spec_augment, utterance_norm, channel_augment)
        for i, (f, k) in enumerate(zip(conv_filters, conv_kernels), 1):
            x = keras.layers.Conv1D(f, k, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
            x = keras.layers.ReLU(name=f"relu{i}")(x)
            if spatial_dropout:
                x = keras.layers.SpatialDropout1D(spatial_dropout, name=f"spatial_dropout{i}")(x)
            x = ApplyTimeMask(name=f"mask{i}")(x, num_frames)
        u = MaskedMeanStd(name="statistics_pooling")(x, num_frames)
        return keras.layers.Dropout(pool_dropout, name="pool_dropout")(u) if pool_dropout else u

    def text_attention():
        init = keras.initializers.Constant(embeddings) if embeddings is not None else "uniform"
        e = keras.layers.Embedding(vocab_size, embedding_dim, embeddings_initializer=init,
                                   trainable=train_embeddings, name="embedding")(word_ids)
        h, mask = blstm(e, num_words, "text")
        return StructuredSelfAttention(attention_units, name="text_attention")(h, mask=mask)[0]

    if kind == "cnn_lstm":
        u, inputs = acoustic_cnn_lstm(), {"features": features, "num_frames": num_frames}
    elif kind == "cnn_pool":
        u, inputs = acoustic_cnn_pool(), {"features": features, "num_frames": num_frames}
        if functionals_dim:
            f = keras.Input((functionals_dim,), name="functionals")
            inputs["functionals"] = f
            g = keras.layers.Dropout(functionals_dropout, name="functionals_dropout")(f) if functionals_dropout else f
            u = keras.layers.Concatenate(name="with_functionals")([u, g])
    elif kind == "blstm_attention_audio":
        u, inputs = acoustic_attention(), {"features": features, "num_frames": num_frames}
    elif kind == "blstm_attention_text":
        u, inputs = text_attention(), {"word_ids": word_ids, "num_words": num_words}
    elif kind in ("utterance_concat", "attention_fusion"):
        ua, us = acoustic_cnn_lstm(), text_attention()
        inputs = {"features": features, "num_frames": num_frames, "word_ids": word_ids, "num_words": num_words}
        if kind == "utterance_concat":
            u = keras.layers.Concatenate(name="concat")([ua, us])
        else:
            d = 2 * lstm_units
            stacked = keras.layers.Concatenate(axis=1, name="stack")([keras.layers.Reshape((1, d))(ua),
                                                                      keras.layers.Reshape((1, d))(us)])
            u = ModalityAttention(attention_units, name="modality_attention")(stacked)
    else:
        raise ValueError(f"build_baseline: unknown kind {kind!r}")
    if functionals_dim and kind != "cnn_pool":
        raise ValueError(f"build_baseline: functionals_dim is for cnn_pool, not {kind!r}")
    u = keras.layers.Dense(hidden_units, activation="relu", name="fc")(u)
    if dropout:
        u = keras.layers.Dropout(dropout, name="dropout")(u)
    out = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(u)
    return keras.Model(inputs, {"emotion": out}, name=name or kind)
