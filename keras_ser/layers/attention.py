"""Structured self-attention (Lin et al., 2017), masked over padding."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_ser")
class StructuredSelfAttention(keras.layers.Layer):
    """`A = softmax(W_s2 tanh(W_s1 Hᵀ))` over time; output `M = A H`, flattened.

    Args:
        units: int. Hidden size d_a of the attention MLP. Defaults to 64.
        heads: int. Number of attention hops r. Defaults to 1.
        penalty: float. Weight of Lin et al.'s ‖AAᵀ − I‖²_F penalty, added with `add_loss`
            (only meaningful for heads > 1). Defaults to 0.

    Call args:
        hidden: `(batch, frames, dim)`.
        mask: `(batch, frames)` bool; padded frames get zero weight.

    Returns:
        `(pooled, weights)`: `(batch, heads * dim)` and `(batch, heads, frames)`.
    """

    def __init__(self, units=64, heads=1, penalty=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.heads, self.penalty = int(units), int(heads), float(penalty)
        # Sub-layers share this layer's dtype policy (also when a mixed-precision model is loaded
        # under a float32 global policy).
        self.w1 = keras.layers.Dense(self.units, use_bias=False, activation="tanh", name="w_s1", dtype=self.dtype_policy)
        self.w2 = keras.layers.Dense(self.heads, use_bias=False, name="w_s2", dtype=self.dtype_policy)
        self.supports_masking = True

    def compute_mask(self, hidden, mask=None):
        return None

    def build(self, hidden_shape, mask_shape=None):
        self.w1.build(hidden_shape)
        self.w2.build(tuple(hidden_shape[:-1]) + (self.units,))

    def call(self, hidden, mask=None):
        scores = self.w2(self.w1(hidden))  # (B, T, r)
        scores = tf.transpose(scores, [0, 2, 1])  # (B, r, T)
        if mask is not None:
            m = tf.cast(mask, scores.dtype)[:, tf.newaxis, :]
            scores = scores + (1.0 - m) * tf.constant(-1e9 if scores.dtype == tf.float32 else -3e4, scores.dtype)
        weights = tf.nn.softmax(scores, axis=-1)
        if mask is not None:
            weights = weights * m
        pooled = tf.matmul(weights, hidden)  # (B, r, D)
        if self.penalty and self.heads > 1:
            eye = tf.eye(self.heads, dtype=weights.dtype)
            p = tf.reduce_mean(tf.reduce_sum(tf.square(tf.matmul(weights, weights, transpose_b=True) - eye), [1, 2]))
            self.add_loss(self.penalty * p)
        return tf.reshape(pooled, [tf.shape(hidden)[0], self.heads * hidden.shape[-1]]), weights

    def compute_output_shape(self, hidden_shape, mask_shape=None):
        return (hidden_shape[0], self.heads * hidden_shape[-1]), (hidden_shape[0], self.heads, hidden_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "heads": self.heads, "penalty": self.penalty})
        return config
