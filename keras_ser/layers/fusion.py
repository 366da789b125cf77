"""Word-level audio-text fusion layers (FG_CME, PAPERS.md §4).

    WordAlignment            word boundaries (seconds) → binary word × frame matrix
    AlignmentPooling         mean and max of each word's frames (temporal-alignment mean-max)
    CrossModalityExcitation  acoustic and semantic gates from the other modality
    MaskedMax                max over the real words

Empty words (no frame inside their interval: a word shorter than a frame, or past the end of a
cropped utterance) pool to zeros, flagged nowhere and never as ±1e6 (the original code put -1e6
in the max, which then dominated the max over words).
"""

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_ser")
class WordAlignment(keras.layers.Layer):
    """`(word_starts, word_ends, num_words, num_frames)` → `(batch, words, frames)` float 0/1.

    Frame t's time is the centre of its receptive field in the input: input frame
    `t + centre_offset`, whose window is centred at `(t + centre_offset) * hop_s + win_s / 2`.
    A word covers the frames whose time lies in `[start - widen * hop_s, end + widen * hop_s)`.
    `num_frames` are the frames of the sequence being pooled (after valid convolutions).

    Args:
        hop_s, win_s: the frontend's hop and window in seconds (10 ms, 25 ms).
        centre_offset: int. Input frames between a pooled frame's first input frame and its
            receptive field's centre (3 for FG_CME's valid convolutions with kernels 5, 2, 2).
        widen: int. Frames added on each side of every word (the original code: 3; paper: 0).
    """

    def __init__(self, hop_s=0.01, win_s=0.025, centre_offset=0, widen=0, **kwargs):
        super().__init__(**kwargs)
        self.hop_s, self.win_s = float(hop_s), float(win_s)
        self.centre_offset, self.widen = int(centre_offset), int(widen)

    def call(self, word_starts, word_ends, num_words, num_frames, frames):
        t = tf.shape(frames)[1]
        times = (tf.cast(tf.range(t), tf.float32) + self.centre_offset) * self.hop_s + self.win_s / 2
        pad = self.widen * self.hop_s
        s = tf.cast(word_starts, tf.float32)[:, :, None] - pad
        e = tf.cast(word_ends, tf.float32)[:, :, None] + pad
        inside = (times[None, None, :] >= s) & (times[None, None, :] < e)
        words = tf.sequence_mask(num_words, tf.shape(word_starts)[1])[:, :, None]
        real = tf.sequence_mask(num_frames, t)[:, None, :]
        return tf.cast(inside & words & real, self.compute_dtype)

    def compute_output_shape(self, starts_shape, *args):
        return (starts_shape[0], starts_shape[1], None)

    def get_config(self):
        return {**super().get_config(), "hop_s": self.hop_s, "win_s": self.win_s,
                "centre_offset": self.centre_offset, "widen": self.widen}


@keras.saving.register_keras_serializable(package="keras_ser")
class AlignmentPooling(keras.layers.Layer):
    """`(frames (batch, T, C), alignment (batch, W, T))` → `(batch, W, 2C)`: per word, the mean
    and the max of its frames, concatenated; zeros for a word without frames."""

    def call(self, frames, alignment):
        a = tf.cast(alignment, frames.dtype)
        count = tf.reduce_sum(a, -1, keepdims=True)
        mean = tf.einsum("bwt,btc->bwc", a, frames) / tf.maximum(count, 1.0)
        inside = a[..., None] > 0
        big = tf.where(inside, frames[:, None, :, :], tf.cast(-np.inf, frames.dtype))
        mx = tf.where(count > 0, tf.reduce_max(big, axis=2), tf.zeros_like(mean))
        return tf.concat([mean, mx], -1)

    def compute_output_shape(self, frames_shape, alignment_shape=None):
        c = frames_shape[-1]
        return (frames_shape[0], alignment_shape[1] if alignment_shape else None, None if c is None else 2 * c)


@keras.saving.register_keras_serializable(package="keras_ser")
class CrossModalityExcitation(keras.layers.Layer):
    """Cross-modality excitation: each modality's word vectors gated by the other's.

    Paper (default): Ẑa = σ(W_e Zs) ⊙ Za,  Ẑs = σ(W_a Za) ⊙ Zs, both gates from the inputs.
    Options (the original code, v2): `residual=True` gives Z + gate ⊙ Z; `acoustic_gate="word_id"`
    takes the acoustic gate from a learnt per-word-id table σ(E[id]) instead of from Zs.
    Ablations: `excite_acoustic=False` / `excite_semantic=False` pass that modality through.

    Call: `(za, zs)` or `(za, zs, word_ids)` (word-id gate) → `(ẑa, ẑs)`.
    """

    def __init__(self, excite_acoustic=True, excite_semantic=True, residual=False, acoustic_gate="semantic",
                 vocab_size=None, **kwargs):
        super().__init__(**kwargs)
        if acoustic_gate not in ("semantic", "word_id"):
            raise ValueError(f"acoustic_gate must be 'semantic' or 'word_id', got {acoustic_gate!r}")
        if acoustic_gate == "word_id" and not vocab_size:
            raise ValueError("acoustic_gate='word_id' needs vocab_size")
        self.excite_acoustic, self.excite_semantic = bool(excite_acoustic), bool(excite_semantic)
        self.residual, self.acoustic_gate, self.vocab_size = bool(residual), acoustic_gate, vocab_size

    def build(self, za_shape, zs_shape=None, word_ids_shape=None):
        da, ds = za_shape[-1], zs_shape[-1]
        if self.excite_acoustic:
            if self.acoustic_gate == "word_id":
                self.gate_table = keras.layers.Embedding(self.vocab_size, da, name="acoustic_gate_table")
                self.gate_table.build((None, None))
            else:
                self.w_e = keras.layers.Dense(da, name="acoustic_gate")
                self.w_e.build(tuple(zs_shape))
        if self.excite_semantic:
            self.w_a = keras.layers.Dense(ds, name="semantic_gate")
            self.w_a.build(tuple(za_shape))

    def _excite(self, z, gate_logits):
        g = tf.sigmoid(tf.cast(gate_logits, z.dtype)) * z
        return z + g if self.residual else g

    def call(self, za, zs, word_ids=None):
        za_hat, zs_hat = za, zs
        if self.excite_acoustic:
            logits = self.gate_table(word_ids) if self.acoustic_gate == "word_id" else self.w_e(zs)
            za_hat = self._excite(za, logits)
        if self.excite_semantic:
            zs_hat = self._excite(zs, self.w_a(za))
        return za_hat, zs_hat

    def compute_output_shape(self, za_shape, zs_shape=None, word_ids_shape=None):
        return za_shape, zs_shape

    def get_config(self):
        return {**super().get_config(), "excite_acoustic": self.excite_acoustic,
                "excite_semantic": self.excite_semantic, "residual": self.residual,
                "acoustic_gate": self.acoustic_gate, "vocab_size": self.vocab_size}


@keras.saving.register_keras_serializable(package="keras_ser")
class MaskedMax(keras.layers.Layer):
    """Max of `(batch, steps, C)` over its first `lengths` steps (zeros when there are none).
    Consumes an incoming Keras mask (the lengths say the same)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, x, lengths=None, mask=None):
        return None

    def call(self, x, lengths, mask=None):
        mask = tf.sequence_mask(lengths, tf.shape(x)[1])[..., None]
        mx = tf.reduce_max(tf.where(mask, x, tf.cast(-np.inf, x.dtype)), axis=1)
        return tf.where(tf.reshape(lengths > 0, [-1, 1]), mx, tf.zeros_like(mx))

    def compute_output_shape(self, x_shape, lengths_shape=None):
        return (x_shape[0], x_shape[2])
