"""Masks from explicit lengths. Conv layers drop Keras masks, so models carry `num_frames`."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_ser")
class ApplyTimeMask(keras.layers.Layer):
    """Zero every frame at or past `num_frames`: `(batch, frames, ...)` × lengths `(batch,)`.

    Accepts an incoming Keras mask and drops it: the padding is zero from here on.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, x, num_frames=None, mask=None):
        return None

    def call(self, x, num_frames, mask=None):
        mask = tf.sequence_mask(num_frames, tf.shape(x)[1], dtype=x.dtype)
        return x * tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([x.shape.rank - 2], tf.int32)], 0))

    def compute_output_shape(self, x_shape, num_frames_shape=None):
        return x_shape


@keras.saving.register_keras_serializable(package="keras_ser")
class DownsampleLengths(keras.layers.Layer):
    """Lengths after a time stride: `ceil(num_frames / stride)` (matches 'same' padding)."""

    def __init__(self, stride=2, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, num_frames):
        n = tf.cast(num_frames, tf.int32)
        return (n + self.stride - 1) // self.stride

    def compute_output_shape(self, num_frames_shape):
        return num_frames_shape

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package="keras_ser")
class ShrinkLengths(keras.layers.Layer):
    """Lengths after valid convolutions that remove `shrink` frames in all (never below 0)."""

    def __init__(self, shrink=0, **kwargs):
        super().__init__(**kwargs)
        self.shrink = int(shrink)

    def call(self, num_frames):
        return tf.maximum(tf.cast(num_frames, tf.int32) - self.shrink, 0)

    def compute_output_shape(self, num_frames_shape):
        return num_frames_shape

    def get_config(self):
        return {**super().get_config(), "shrink": self.shrink}


@keras.saving.register_keras_serializable(package="keras_ser")
class LengthMask(keras.layers.Layer):
    """Boolean `(batch, frames)` mask for `x` from lengths."""

    def call(self, x, num_frames):
        return tf.sequence_mask(num_frames, tf.shape(x)[1])

    def compute_output_shape(self, x_shape, num_frames_shape=None):
        return (x_shape[0], x_shape[1])


@keras.saving.register_keras_serializable(package="keras_ser")
class RepeatOverTime(keras.layers.Layer):
    """One vector per utterance `(batch, C)` repeated at every frame of `x` `(batch, frames, ...)`:
    `(batch, frames, C)`, to concatenate with frame features. A Keras mask on `x` passes through."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, v, x, mask=None):
        return mask

    def call(self, v, x, mask=None):
        return tf.repeat(v[:, None, :], tf.shape(x)[1], axis=1)

    def compute_output_shape(self, v_shape, x_shape=None):
        return (v_shape[0], None if x_shape is None else x_shape[1], v_shape[-1])


@keras.saving.register_keras_serializable(package="keras_ser")
class MaskedTimeAverage(keras.layers.Layer):
    """Mean of `(batch, frames[, ...])` over its first `num_frames` frames (0 for an empty one).

    A Keras mask on `x` (from an LSTM) is consumed: `num_frames` already says which frames count.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, x, mask=None):
        return None

    def call(self, x, num_frames):
        mask = tf.sequence_mask(num_frames, tf.shape(x)[1], dtype=x.dtype)
        mask = tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([x.shape.rank - 2], tf.int32)], 0))
        total = tf.reduce_sum(x * mask, axis=1)
        count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return total / count

    def compute_output_shape(self, x_shape, num_frames_shape=None):
        return (x_shape[0],) + tuple(x_shape[2:])


@keras.saving.register_keras_serializable(package="keras_ser")
class MaskedMeanStd(keras.layers.Layer):
    """Statistics pooling: the mean and the standard deviation of `(batch, frames, C)` over each
    utterance's first `num_frames` frames, concatenated: `(batch, 2C)`. A Keras mask on `x` is
    consumed (`num_frames` says the same).

    Args:
        epsilon: float. Added to the variance before the square root. Defaults to 1e-5.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.supports_masking = True

    def compute_mask(self, x, num_frames=None, mask=None):
        return None

    def call(self, x, num_frames, mask=None):
        m = tf.sequence_mask(num_frames, tf.shape(x)[1], dtype=x.dtype)[..., None]
        n = tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
        mean = tf.reduce_sum(x * m, axis=1) / n
        var = tf.reduce_sum(tf.square((x - mean[:, None, :]) * m), axis=1) / n
        return tf.concat([mean, tf.sqrt(var + self.epsilon)], -1)

    def compute_output_shape(self, x_shape, num_frames_shape=None):
        return (x_shape[0], None if x_shape[-1] is None else 2 * x_shape[-1])

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
