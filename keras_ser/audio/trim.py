"""Leading and trailing silence: where an utterance's speech starts and ends.

Acted corpora pad every utterance with silence (RAVDESS: about a second each side of three and a
half); statistics pooled over all frames then describe the room as much as the speaker. The
same rule runs in NumPy (the record writer) and in TensorFlow (the export, so that served
audio is trimmed as training audio was):

    frame energy   mean square of non-centred frames of 400 samples, hop 160 (25 / 10 ms)
    kept           from the first to the last frame whose energy is within `top_db` dB of the
                   loudest frame's; samples outside those frames are dropped

An utterance shorter than one frame, or whose frames are all within `top_db` of the loudest, is
kept whole. This module does not import TensorFlow (`trim_bounds_tf` imports it when called).
"""

import numpy as np

FRAME, HOP = 400, 160


def trim_bounds(wav, top_db=30.0):
    """`(start, end)` sample indices of the speech in a 1-D waveform (see the module docstring)."""
    wav = np.asarray(wav, np.float64)
    n = len(wav)
    if n < FRAME:
        return 0, n
    frames = np.lib.stride_tricks.sliding_window_view(wav, FRAME)[::HOP]
    energy = np.mean(frames**2, axis=1)
    db = 10.0 * np.log10(np.maximum(energy, 1e-20))
    loud = np.flatnonzero(db >= db.max() - top_db)
    return int(loud[0] * HOP), int(min(n, loud[-1] * HOP + FRAME))


def trim(wav, top_db=30.0):
    """The waveform from its first to its last loud frame (`trim_bounds`)."""
    start, end = trim_bounds(wav, top_db)
    return wav[start:end]


def trim_bounds_tf(waveform, num_samples, top_db=30.0):
    """`trim_bounds` for a zero-padded batch `(batch, samples)` with lengths `(batch,)`, in
    TensorFlow: `(start, end)`, each `(batch,)` int32."""
    import tensorflow as tf

    x = tf.cast(waveform, tf.float64)
    n = tf.cast(num_samples, tf.int32)
    frames = tf.signal.frame(x, FRAME, HOP, pad_end=False)  # (batch, F, FRAME)
    count = tf.shape(frames)[1]
    real = tf.sequence_mask(tf.maximum(0, 1 + (n - FRAME) // HOP), count)
    db = 10.0 * tf.math.log(tf.maximum(tf.reduce_mean(frames**2, -1), 1e-20)) / tf.math.log(tf.constant(10.0, tf.float64))
    db = tf.where(real, db, -np.inf)
    loud = real & (db >= tf.reduce_max(db, 1, keepdims=True) - top_db)
    idx = tf.range(count)[None, :]
    first = tf.reduce_min(tf.where(loud, idx, count), 1)
    last = tf.reduce_max(tf.where(loud, idx, -1), 1)
    short = n < FRAME
    start = tf.where(short, 0, first * HOP)
    end = tf.where(short, n, tf.minimum(n, last * HOP + FRAME))
    return start, end
