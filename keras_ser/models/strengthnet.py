"""StrengthNet: emotion strength and category from speech (Liu, Sisman, Li, 2021).

Paper version (default):

    80-channel log-mel spectrum (50 ms frames, 12.5 ms hop), z-normalised with training statistics
    encoder: 4 blocks x 3 Conv2D (16, 32, 64, 128 filters; 3x3; ReLU; same padding), strides
             (1,1), (1,1), (1,3): the third conv of each block divides frequency by 3, time is
             never downsampled; reshape to (T, F' * 128)
    strength predictor: BiLSTM(128) → Dense(128, ReLU) → Dropout(0.3) → Dense(1) per frame
             = `frame_strength`; its average over the real frames = `strength`
    emotion predictor: a second BiLSTM(128) on the encoder output (not on the first BiLSTM),
             last state → Dropout(0.3) → softmax(K) = `emotion` (options outside the paper:
             `emotion_pooling="mean"`, the mean over real frames instead; `"statistics"`, no
             emotion BiLSTM, the mean and standard deviation of the encoder's output → Dense)

The original code differs (options, see `original_input` and `recurrent_max_norm`): its input is
the linear mel *magnitude* (n_fft 512, hop 256; the `strengthnet_original` frontend) without
normalisation, projected by Dense(257) before the CNN (a MOSNet leftover), and both recurrent
kernels carry `max_norm(1e-5)`, which all but disables recurrence. It also trained the frame
loss on zero padding; here the padding is masked everywhere: every block re-applies the time
mask, the LSTMs get a Keras mask, the utterance strength averages real frames only, and the
frame loss (`keras_ser.losses.MaskedMAE`) ignores padded frames. Padded and unpadded inputs give
the same outputs (tested).

`spec_augment` (a dict of `keras_ser.layers.SpecAugment` arguments, e.g. `{}` for its defaults)
masks the normalised features in training; neither the paper nor its code augments.

Heads are named `frame_strength` `(batch, frames)`, `strength` `(batch,)` and `emotion`
`(batch, K)`; the original code's `frame`, `avg` and `class`.
"""

import keras

from keras_ser.layers import ApplyTimeMask, LengthMask, MaskedNormalization, SpecAugment
from keras_ser.layers.masking import MaskedMeanStd, MaskedTimeAverage, RepeatOverTime

FILTERS = (16, 32, 64, 128)
STRIDES = ((1, 1), (1, 1), (1, 3))


def build_strengthnet(num_classes=4, feature_dim=80, mean=None, std=None, filters=FILTERS, lstm_units=128,
                      dense_units=128, dropout=0.3, original_input=False, recurrent_max_norm=None,
                      conv_initializer="he_normal", emotion_pooling="last", spec_augment=None,
                      batch_norm=False, functionals_dim=0, functionals_dropout=0.0, name="strengthnet"):
    """The StrengthNet model.

    Args:
        num_classes: int. Emotion classes K (4 in the paper).
        feature_dim: int. 80 (paper, log-mel) or 257 (original code, linear magnitude).
        mean, std: training-set feature statistics (z-normalisation; the paper). Ignored with
            `original_input`.
        filters: the four blocks' filter counts.
        lstm_units: int. Units per direction of each BiLSTM. Defaults to 128.
        dense_units: int. The frame predictor's hidden layer. Defaults to 128.
        dropout: float. Defaults to 0.3.
        original_input: bool. The original code's input: no normalisation, Dense(257) on each
            frame before the CNN.
        recurrent_max_norm: float or None. The original code's `max_norm(1e-5)` on both
            recurrent kernels (None: no constraint, the paper).
        conv_initializer: the convolutions' kernel initializer. He-normal by default: with Keras's
            Glorot default and z-normalised input (no batch norm anywhere), the activations shrink
            about 4x per block, the encoder output is ~1e-3 and the emotion BiLSTM's output hardly
            varies between utterances, so the emotion head does not learn. The original code
            used Glorot on un-normalised linear magnitudes; "glorot_uniform" restores it.
        emotion_pooling: "last" (the paper and the code): the emotion BiLSTM's final states,
            i.e. the forward pass's state after the last real frame and the backward pass's after
            the first. "mean": the masked mean of its outputs over the real frames (not in the
            paper). On corpora with long leading and trailing silences (RAVDESS: about a second
            each side) both final states summarise silence, and in short CPU runs the emotion
            head stayed at chance (docs/results/strengthnet.md). "statistics" (not in the
            paper): no emotion BiLSTM; the masked mean and standard deviation of the encoder's
            output over the real frames → Dense(`dense_units`, ReLU) → Dropout → softmax, the
            head of the plain CNN that generalises across RAVDESS's actors (FG_CME's `cnn_pool`);
            the standard deviation carries the variability over time that a mean discards. On
            RAVDESS's inner folds it beat "mean" without batch normalisation (52.9 against 48.1
            WA) and lost to it with (56.9 against 61.3; docs/results/strengthnet.md).
        spec_augment: None, or a dict of `SpecAugment` arguments: frequency and time masks on
            the normalised features (on the raw ones with `original_input`), in training only.
            Masked values are 0 (the features' mean; silence with `original_input`), so the
            level of the unmasked frames, the strongest cue of strength on the synthetic corpus,
            is kept (unlike gain augmentation). Not in the paper or its code.
        batch_norm: bool. Batch normalisation between each convolution (then without bias) and
            its ReLU, as in FG_CME's `cnn_pool`; not in the paper or its code. Without it the
            twelve convolutions train slowly on small corpora: on RAVDESS the emotion head's
            training accuracy was 0.48–0.65 after 20 epochs, 0.98–1.0 with it (docs/results/strengthnet.md).
            Padded frames are zeroed after every convolution as before; in training they enter
            the batch statistics (as in `cnn_pool`), at inference padding changes nothing (tested).
        functionals_dim: int. > 0 (`data.functionals`; not the paper's) adds an input
            `functionals` `(batch, functionals_dim)`: the utterance's openSMILE functionals,
            standardised outside the model (the training pipeline does it per fold), after
            dropout `functionals_dropout` joined to both heads: to the strength BiLSTM's output at
            every frame (before the frame predictor's dense layer) and to the pooled emotion
            vector. An early-fusion hybrid with the reference, as FG_CME's `cnn_pool` has; it
            hands the heads the utterance's level and prosody statistics directly.
        functionals_dropout: float. Dropout on the functionals input. Defaults to 0.

    Returns:
        Model `{features, num_frames[, functionals]}` → `{"frame_strength", "strength", "emotion"}`.
    """
    features = keras.Input((None, feature_dim), name="features")
    num_frames = keras.Input((), dtype="int32", name="num_frames")
    if original_input:
        x = features
        if spec_augment is not None:
            x = SpecAugment(**dict(spec_augment), name="spec_augment")(x, num_frames)
        x = keras.layers.Dense(257, name="input_projection")(x)
        x = ApplyTimeMask(name="input_mask")(x, num_frames)
        width = 257
    else:
        x = MaskedNormalization(mean=mean, std=std, dim=feature_dim, name="normalization")(features, num_frames)
        if spec_augment is not None:
            x = SpecAugment(**dict(spec_augment), name="spec_augment")(x, num_frames)
        width = feature_dim
    x = keras.layers.Reshape((-1, width, 1), name="add_channel")(x)
    for b, f in enumerate(filters, 1):
        for c, strides in enumerate(STRIDES, 1):
            x = keras.layers.Conv2D(f, 3, strides=strides, padding="same", activation=None if batch_norm else "relu",
                                    use_bias=not batch_norm, kernel_initializer=conv_initializer,
                                    name=f"conv{b}_{c}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"bn{b}_{c}")(x)
                x = keras.layers.ReLU(name=f"relu{b}_{c}")(x)
            # After every conv: a 3x3 kernel would carry bias-only padded frames into real ones.
            x = ApplyTimeMask(name=f"mask{b}_{c}")(x, num_frames)
    x = keras.layers.Reshape((-1, x.shape[2] * x.shape[3]), name="flatten_freq")(x)
    mask = LengthMask(name="time_mask")(x, num_frames)
    constraint = keras.constraints.MaxNorm(recurrent_max_norm) if recurrent_max_norm else None

    def blstm(seq, name):
        return keras.layers.Bidirectional(
            keras.layers.LSTM(lstm_units, return_sequences=seq, recurrent_constraint=constraint), name=name)

    inputs = {"features": features, "num_frames": num_frames}
    g = None
    if functionals_dim:
        inputs["functionals"] = keras.Input((functionals_dim,), name="functionals")
        g = inputs["functionals"]
        if functionals_dropout:
            g = keras.layers.Dropout(functionals_dropout, name="functionals_dropout")(g)
    h = blstm(True, "strength_blstm")(x, mask=mask)
    if g is not None:
        h = keras.layers.Concatenate(name="frames_with_functionals")([h, RepeatOverTime(name="functionals_per_frame")(g, h)])
    h = keras.layers.Dense(dense_units, activation="relu", name="frame_dense")(h)
    h = keras.layers.Dropout(dropout, name="frame_dropout")(h)
    frame = keras.layers.Dense(1, dtype="float32", name="frame_score")(h)
    frame = ApplyTimeMask(dtype="float32", name="frame_mask")(frame, num_frames)
    frame = keras.layers.Reshape((-1,), dtype="float32", name="frame_strength")(frame)
    strength = MaskedTimeAverage(dtype="float32", name="strength")(frame, num_frames)
    if emotion_pooling == "last":
        e = blstm(False, "emotion_blstm")(x, mask=mask)
    elif emotion_pooling == "mean":
        e = blstm(True, "emotion_blstm")(x, mask=mask)
        e = MaskedTimeAverage(name="emotion_pool")(e, num_frames)
    elif emotion_pooling == "statistics":
        e = MaskedMeanStd(name="emotion_statistics")(x, num_frames)
        e = keras.layers.Dense(dense_units, activation="relu", name="emotion_dense")(e)
    else:
        raise ValueError(f"build_strengthnet: emotion_pooling must be 'last', 'mean' or 'statistics', "
                         f"got {emotion_pooling!r}")
    if g is not None:
        e = keras.layers.Concatenate(name="emotion_with_functionals")([e, g])
    e = keras.layers.Dropout(dropout, name="emotion_dropout")(e)
    emotion = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(e)
    return keras.Model(inputs, {"frame_strength": frame, "strength": strength, "emotion": emotion}, name=name)
