"""Augmentation: offline speed perturbation (soxr) and SpecAugment-style masks (TensorFlow).

Speed perturbation follows Kaldi/sox `speed`: tempo and pitch change together; a factor of 1.1
makes the utterance 1.1 times faster (shorter). SpecAugment masks respect `num_frames`: time masks
fall inside the real frames and padding stays exactly zero.
"""

import numpy as np

from keras_ser.audio.io import SAMPLE_RATE, resample


def speed_perturb(waveform, factor, sample_rate=SAMPLE_RATE):
    """Speed-perturb a waveform by `factor` (e.g. 0.9 or 1.1), returning `len / factor` samples.

    Args:
        waveform: np.ndarray `(samples,)`.
        factor: float > 0. Speed factor.
        sample_rate: int. Defaults to 16000.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0:
        return np.asarray(waveform, np.float32)
    # Interpreting the samples as recorded at sample_rate * factor and resampling back to
    # sample_rate plays them `factor` times faster.
    return resample(waveform, sample_rate * factor, sample_rate)


def _quiet_tfio():
    """Import tensorflow_io lazily with its load warnings silenced.

    On TF >= 2.18 its C++ kernels do not load; its pure-Python audio ops (freq_mask, time_mask,
    spectrogram, melscale) still work.
    """
    import logging
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.getLogger("tensorflow").level
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        try:
            import tensorflow_io as tfio
        finally:
            logging.getLogger("tensorflow").setLevel(level)
    return tfio


def spec_augment(features, num_frames, freq_mask_param=8, time_mask_param=20, num_freq_masks=2,
                 num_time_masks=2, seed=None):
    """SpecAugment frequency and time masks on a batch of padded features.

    Frequency masks use tensorflow-io's `freq_mask` (a pure-Python op that works on current TF);
    time masks are drawn inside each utterance's real frames. Masked values are set to 0, which
    is the mean after normalisation.

    Args:
        features: float tensor `(batch, frames, dim)`, zero-padded.
        num_frames: int tensor `(batch,)`.
        freq_mask_param: int. Largest frequency-mask width F.
        time_mask_param: int. Largest time-mask width T.
        num_freq_masks: int. Number of frequency masks.
        num_time_masks: int. Number of time masks.
        seed: int or None. Seed for the time masks.

    Returns:
        Tensor of the same shape as `features`.
    """
    import tensorflow as tf

    tfio = _quiet_tfio()
    x = tf.convert_to_tensor(features)
    num_frames = tf.cast(num_frames, tf.int32)
    if num_freq_masks and freq_mask_param:
        def one(u):
            for _ in range(num_freq_masks):
                u = tfio.audio.freq_mask(u, param=freq_mask_param)
            return u

        x = tf.map_fn(one, x)
    batch, frames = tf.shape(x)[0], tf.shape(x)[1]
    t = tf.range(frames)[tf.newaxis, :]
    rng = tf.random.Generator.from_seed(seed) if seed is not None else tf.random.get_global_generator()
    keep = tf.ones([batch, frames], x.dtype)
    for _ in range(num_time_masks if time_mask_param else 0):
        width = rng.uniform([batch], 0, time_mask_param + 1, dtype=tf.int32)
        width = tf.minimum(width, num_frames)
        start = tf.cast(
            rng.uniform([batch]) * tf.cast(tf.maximum(num_frames - width, 0) + 1, tf.float32), tf.int32
        )
        inside = (t >= start[:, None]) & (t < (start + width)[:, None])
        keep = keep * (1.0 - tf.cast(inside, x.dtype))
    return x * keep[..., tf.newaxis]
