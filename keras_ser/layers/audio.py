"""Thin Keras layers over the audio frontends, so exported models can take raw waveforms."""

import keras
import numpy as np
import tensorflow as tf

from keras_ser.audio.frontends import compute_features, frontend_matrix, get_frontend_config


@keras.saving.register_keras_serializable(package="keras_ser")
class AudioFrontend(keras.layers.Layer):
    """Waveforms `(batch, samples)` + lengths `(batch,)` → features `(batch, frames, dim)` + `num_frames`.

    Wraps `keras_ser.audio.compute_features`; frames past `num_frames` are exactly 0.

    Args:
        frontend: str or dict. A preset name from `keras_ser.audio.PRESETS` or a `FrontendConfig`
            as a dict. Defaults to "mlee".

    Example:
    >>> import numpy as np
    >>> layer = AudioFrontend("epr")
    >>> feats, n = layer(np.zeros((2, 16000), "float32"), np.array([16000, 8000]))
    >>> tuple(feats.shape), n.numpy().tolist()
    ((2, 98, 64), [98, 48])
    """

    def __init__(self, frontend="mlee", **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.frontend = frontend if isinstance(frontend, str) else dict(frontend)
        self.frontend_config = get_frontend_config(frontend)
        self._matrix = frontend_matrix(self.frontend_config)

    def call(self, waveforms, num_samples):
        return compute_features(waveforms, num_samples, self.frontend_config, matrix=self._matrix)

    def compute_output_shape(self, waveforms_shape, num_samples_shape=None):
        return (waveforms_shape[0], None, self.frontend_config.feature_dim), (waveforms_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update({"frontend": self.frontend})
        return config


@keras.saving.register_keras_serializable(package="keras_ser")
class MaskedNormalization(keras.layers.Layer):
    """z-normalise features with fixed statistics, keeping padded frames at exactly 0.

    The mean and standard deviation come from the training split (see
    `keras_ser.audio.FeatureStats`) and are stored as non-trainable weights, so they are saved
    with the model and exported with it.

    Args:
        mean: array-like `(dim,)`. Defaults to zeros.
        std: array-like `(dim,)`. Defaults to ones.
        dim: int. Feature dimension, when `mean`/`std` are not given.

    Call args:
        features: `(batch, frames, dim)`.
        num_frames: `(batch,)` int.
    """

    def __init__(self, mean=None, std=None, dim=None, **kwargs):
        super().__init__(**kwargs)
        if mean is None and dim is None:
            raise ValueError("MaskedNormalization needs mean/std or dim")
        self.dim = int(dim if dim is not None else len(mean))
        self._init_mean = np.zeros(self.dim, "float32") if mean is None else np.asarray(mean, "float32")
        self._init_std = np.ones(self.dim, "float32") if std is None else np.asarray(std, "float32")
        if self._init_mean.shape != (self.dim,) or self._init_std.shape != (self.dim,):
            raise ValueError(f"mean/std must have shape ({self.dim},)")
        if np.any(self._init_std <= 0):
            raise ValueError("std must be positive")

    def build(self, features_shape=None, num_frames_shape=None):
        self.mean = self.add_weight(
            shape=(self.dim,), initializer=keras.initializers.Constant(self._init_mean),
            trainable=False, name="mean",
        )
        self.std = self.add_weight(
            shape=(self.dim,), initializer=keras.initializers.Constant(self._init_std),
            trainable=False, name="std",
        )

    def set_statistics(self, mean, std):
        self.mean.assign(np.asarray(mean, "float32"))
        self.std.assign(np.asarray(std, "float32"))

    def call(self, features, num_frames=None):
        x = (features - self.mean) / self.std
        if num_frames is None:  # fixed-length input (EPR segments): nothing to mask
            return x
        mask = tf.sequence_mask(num_frames, tf.shape(features)[1], dtype=features.dtype)
        return x * mask[..., tf.newaxis]

    def compute_output_shape(self, features_shape, num_frames_shape=None):
        return features_shape

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim})
        return config


@keras.saving.register_keras_serializable(package="keras_ser")
class UtteranceNormalization(keras.layers.Layer):
    """Per-utterance mean (and variance) normalisation over each utterance's real frames.

    Cepstral mean (and variance) normalisation, per utterance: the statistics are those of the
    frames before `num_frames`, so padding changes nothing, and padded frames stay exactly 0. It
    removes what is constant over an utterance (microphone, level, part of the speaker), and with
    it any absolute level the emotion would be read from; whether that helps is a question for
    the corpus (docs/results/fg_cme.md). It needs no statistics, so the export behaves the same on any
    speaker.

    Args:
        mode: "mean" (subtract the utterance mean) or "meanvar" (also divide by its std).
        epsilon: float. Floor of the standard deviation in "meanvar".

    Call args:
        features: `(batch, frames, dim)`.
        num_frames: `(batch,)` int.
    """

    def __init__(self, mode="mean", epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("mean", "meanvar"):
            raise ValueError(f"UtteranceNormalization mode must be 'mean' or 'meanvar', got {mode!r}")
        self.mode = mode
        self.epsilon = float(epsilon)

    def call(self, features, num_frames):
        mask = tf.sequence_mask(num_frames, tf.shape(features)[1], dtype=features.dtype)[..., tf.newaxis]
        count = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
        mean = tf.reduce_sum(features * mask, axis=1, keepdims=True) / count
        x = features - mean
        if self.mode == "meanvar":
            var = tf.reduce_sum(tf.square(x) * mask, axis=1, keepdims=True) / count
            x = x / tf.maximum(tf.sqrt(var), self.epsilon)
        return x * mask

    def compute_output_shape(self, features_shape, num_frames_shape=None):
        return features_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="keras_ser")
class ChannelAugment(keras.layers.Layer):
    """A random recording channel per utterance, in training only: a smooth random gain curve
    over the frequency bins added to log-power features, before their normalisation.

    The curve is `a_0 + sum_{k=1..order} a_k cos(pi k (f + 1/2) / dim)` over the bins `f`, with
    `a_0 ~ N(0, gain)` (the level) and `a_k ~ N(0, shape)` (tilt and broad resonances: a
    microphone, a room, a distance), drawn once per utterance and added to every real frame;
    padding stays exactly 0. In the features' log units: the frontends take the natural log of
    power, so 1.0 is 4.3 dB. Features that arrive standardised (`data.normalization` speaker or
    utterance) make the curve one in standard deviations: scale it down there (RAVDESS's inner
    folds, per-speaker normalisation: the defaults cost FG_CME 15 WA points, a third of them gained
    1.3 WA / 2.8 UA; docs/results/fg_cme.md). Outside training the layer is the identity (exports
    are unaffected).
    Not in any of the papers.

    Args:
        gain: float >= 0. Standard deviation of the level offset.
        shape: float >= 0. Standard deviation of each cosine term.
        order: int >= 0. Number of cosine terms (0: level only).
        seed: int or None.

    Call args:
        features: `(batch, frames, dim)` log-power features, zero-padded. num_frames: `(batch,)` int.
    """

    def __init__(self, gain=1.0, shape=0.5, order=3, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.gain, self.shape, self.order = float(gain), float(shape), int(order)
        if self.gain < 0 or self.shape < 0 or self.order < 0:
            raise ValueError(f"ChannelAugment: gain, shape and order must be >= 0, got {gain}, {shape}, {order}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, features, num_frames, training=None):
        if not training:
            return features
        shape = tf.shape(features)
        batch, frames, dim = shape[0], shape[1], shape[2]
        f = (tf.cast(tf.range(dim), features.dtype) + 0.5) / tf.cast(dim, features.dtype)
        k = tf.range(self.order + 1, dtype=features.dtype)
        basis = tf.cos(np.pi * k[:, tf.newaxis] * f[tf.newaxis, :])  # (order + 1, dim); row 0 is 1
        scale = tf.concat([[self.gain], tf.fill([self.order], self.shape)], 0)
        coef = keras.random.normal([batch, self.order + 1], seed=self.seed_generator) * tf.cast(scale, features.dtype)
        curve = tf.matmul(coef, basis)  # (batch, dim)
        mask = tf.sequence_mask(num_frames, frames, dtype=features.dtype)
        return features + curve[:, tf.newaxis, :] * mask[..., tf.newaxis]

    def compute_output_shape(self, features_shape, num_frames_shape=None):
        return features_shape

    def get_config(self):
        config = super().get_config()
        config.update({"gain": self.gain, "shape": self.shape, "order": self.order, "seed": self.seed})
        return config


def sequence_mask(num_frames, maxlen, dtype="float32"):
    """`(batch, maxlen)` mask from lengths."""
    return tf.sequence_mask(num_frames, maxlen, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_ser")
class SpecAugment(keras.layers.Layer):
    """SpecAugment frequency and time masks on normalised features, in training only.

    Each utterance gets `num_freq_masks` bands of width U[0, freq_mask_param] and
    `num_time_masks` spans of width U[0, time_mask_param] (never wider than the utterance) set
    to 0, the mean after `MaskedNormalization`. Time masks fall inside the real frames, so
    padding stays exactly 0; outside training the layer is the identity (exports are unaffected).

    Args:
        freq_mask_param, num_freq_masks: widest frequency mask (bins) and how many.
        time_mask_param, num_time_masks: widest time mask (frames) and how many.
        seed: int or None.

    Call args:
        features: `(batch, frames, dim)`, zero-padded. num_frames: `(batch,)` int.
    """

    def __init__(self, freq_mask_param=8, num_freq_masks=2, time_mask_param=20, num_time_masks=2, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.freq_mask_param, self.num_freq_masks = int(freq_mask_param), int(num_freq_masks)
        self.time_mask_param, self.num_time_masks = int(time_mask_param), int(num_time_masks)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _keep(self, batch, size, lengths, param, count):
        """`(batch, size)` 1/0: `count` spans of width U[0, param], inside `lengths`."""
        pos = tf.range(size)[tf.newaxis, :]
        keep = tf.ones([batch, size], self.compute_dtype)
        for _ in range(count):
            width = keras.random.randint([batch], 0, param + 1, seed=self.seed_generator)
            width = tf.minimum(width, lengths)
            u = keras.random.uniform([batch], seed=self.seed_generator)
            start = tf.cast(u * tf.cast(lengths - width + 1, u.dtype), "int32")
            start = tf.minimum(start, lengths - width)
            inside = (pos >= start[:, None]) & (pos < (start + width)[:, None])
            keep = keep * (1.0 - tf.cast(inside, self.compute_dtype))
        return keep

    def call(self, features, num_frames, training=None):
        if not training:
            return features
        shape = tf.shape(features)
        batch, frames, dim = shape[0], shape[1], shape[2]
        lengths = tf.cast(num_frames, "int32")
        keep_t = self._keep(batch, frames, lengths, self.time_mask_param, self.num_time_masks)
        keep_f = self._keep(batch, dim, tf.fill([batch], dim), self.freq_mask_param, self.num_freq_masks)
        return features * keep_t[:, :, tf.newaxis] * keep_f[:, tf.newaxis, :]

    def compute_output_shape(self, features_shape, num_frames_shape=None):
        return features_shape

    def get_config(self):
        config = super().get_config()
        config.update({"freq_mask_param": self.freq_mask_param, "num_freq_masks": self.num_freq_masks,
                       "time_mask_param": self.time_mask_param, "num_time_masks": self.num_time_masks,
                       "seed": self.seed})
        return config
