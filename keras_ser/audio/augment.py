"""Augmentation: offline speed perturbation (soxr).

Speed perturbation follows Kaldi/sox `speed`: tempo and pitch change together; a factor of 1.1
makes the utterance 1.1 times faster (shorter). SpecAugment lives in the model, after feature
normalisation: `keras_ser.layers.SpecAugment` (training only, inside the real frames).
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
