"""Fixed-length segments of utterances and statistics of segment posteriors (EPR).

`frame_segments` cuts a zero-padded batch `(batch, frames, dim)` into overlapping segments
`(batch, segments, length, dim)` in the graph (the tf.data pipeline and the exported model share
it). Utterance `b` has `segment_count(num_frames[b])` real segments:

    1 + (num_frames - length) // hop   when num_frames >= length
    1                                  otherwise: frames past num_frames are `pad_value`

Segments never contain a frame past `num_frames` except in that padded short case.
"""

import keras
import numpy as np
import tensorflow as tf


def segment_count(num_frames, length=32, hop=1):
    """Real segments per utterance (NumPy; the same formula as `frame_segments`)."""
    n = np.asarray(num_frames, np.int64)
    return np.maximum(1, 1 + (n - length) // hop)


def frame_segments(features, num_frames, length=32, hop=1, pad_value=0.0):
    """`(batch, frames, dim)`, `(batch,)` → segments `(batch, S, length, dim)`, counts `(batch,)`."""
    num_frames = tf.cast(num_frames, tf.int32)
    t = tf.shape(features)[1]
    valid = tf.sequence_mask(num_frames, t)[..., None]
    x = tf.where(valid, features, tf.cast(pad_value, features.dtype))
    x = tf.pad(x, [[0, 0], [0, tf.maximum(0, length - t)], [0, 0]], constant_values=pad_value)
    segments = tf.signal.frame(x, length, hop, axis=1)
    counts = tf.maximum(1, 1 + (num_frames - length) // hop)
    return segments, counts


@keras.saving.register_keras_serializable(package="keras_ser")
class Segmenter(keras.layers.Layer):
    """`frame_segments` as a layer: `(features, num_frames)` → `(segments, counts)`."""

    def __init__(self, length=32, hop=1, pad_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.length, self.hop, self.pad_value = int(length), int(hop), float(pad_value)

    def call(self, features, num_frames):
        return frame_segments(features, num_frames, self.length, self.hop, self.pad_value)

    def compute_output_shape(self, features_shape, num_frames_shape=None):
        return (features_shape[0], None, self.length, features_shape[2]), (features_shape[0],)

    def get_config(self):
        return {**super().get_config(), "length": self.length, "hop": self.hop, "pad_value": self.pad_value}


@keras.saving.register_keras_serializable(package="keras_ser")
class FlattenSegments(keras.layers.Layer):
    """`(batch, S, length, dim)` → `(batch * S, length, dim)`."""

    def call(self, segments):
        s = tf.shape(segments)
        return tf.reshape(segments, tf.concat([[s[0] * s[1]], s[2:]], 0))

    def compute_output_shape(self, shape):
        return (None,) + tuple(shape[2:])


@keras.saving.register_keras_serializable(package="keras_ser")
class UnflattenSegments(keras.layers.Layer):
    """Per-segment outputs `(batch * S, K)` back to `(batch, S, K)`, S taken from `segments`."""

    def call(self, x, segments):
        s = tf.shape(segments)
        return tf.reshape(x, tf.concat([s[:2], tf.shape(x)[1:]], 0))

    def compute_output_shape(self, x_shape, segments_shape=None):
        return (segments_shape[0], segments_shape[1]) + tuple(x_shape[1:])


@keras.saving.register_keras_serializable(package="keras_ser")
class ProfileStatistics(keras.layers.Layer):
    """`keras_ser.labels.profiles.profile_statistics` over the first `counts[b]` segments of
    each profile in a batch: `(batch, S, K)`, `(batch,)` → `(batch, (5 + P) * K)` (tested equal)."""

    def __init__(self, percentiles=(10.0, 25.0, 50.0, 75.0, 90.0), **kwargs):
        super().__init__(**kwargs)
        self.percentiles = [float(q) for q in percentiles]

    def call(self, profile, counts):
        p = tf.cast(profile, tf.float32)
        k = tf.shape(p)[2]
        mask = tf.sequence_mask(counts, tf.shape(p)[1])[..., None]
        n = tf.cast(tf.maximum(counts, 1), tf.float32)[:, None]
        mean = tf.reduce_sum(tf.where(mask, p, 0.0), 1) / n
        var = tf.reduce_sum(tf.where(mask, tf.square(p - mean[:, None]), 0.0), 1) / n
        parts = [mean, tf.sqrt(var), tf.reduce_min(tf.where(mask, p, np.inf), 1),
                 tf.reduce_max(tf.where(mask, p, -np.inf), 1)]
        if self.percentiles:
            ordered = tf.sort(tf.where(mask, p, np.inf), axis=1)
            last = n[:, 0] - 1.0
            for q in self.percentiles:
                pos = q / 100.0 * last
                lo = tf.floor(pos)
                hi = tf.minimum(lo + 1.0, last)
                a = tf.gather(ordered, tf.cast(lo, tf.int32), axis=1, batch_dims=1)
                b = tf.gather(ordered, tf.cast(hi, tf.int32), axis=1, batch_dims=1)
                parts.append(a + (b - a) * (pos - lo)[:, None])
        winners = tf.one_hot(tf.argmax(p, -1), k) * tf.cast(mask, tf.float32)
        parts.append(tf.reduce_sum(winners, 1) / n)
        return tf.concat(parts, -1)

    def compute_output_shape(self, profile_shape, counts_shape=None):
        k = profile_shape[2]
        return (profile_shape[0], None if k is None else (5 + len(self.percentiles)) * k)

    def get_config(self):
        return {**super().get_config(), "percentiles": self.percentiles}
