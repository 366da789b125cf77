"""Audio loading: any soundfile format (WAV, FLAC, OGG) to float32 mono at 16 kHz.

Decoding uses soundfile, resampling uses soxr (high quality). TensorFlow is not needed here, so
these functions are safe in worker processes that must never import TensorFlow (openSMILE).
"""

import os

import numpy as np

from keras_ser.errors import AudioError
from keras_ser.utils import atomic_path

SAMPLE_RATE = 16000
"""The sample rate every keras_ser model and frontend works at."""


def resample(waveform, orig_sr, target_sr=SAMPLE_RATE, quality="HQ"):
    """Resample a 1-D float waveform with soxr.

    Args:
        waveform: np.ndarray of shape `(samples,)`.
        orig_sr: int. Sample rate of `waveform`.
        target_sr: int. Sample rate wanted. Defaults to 16000.
        quality: str. soxr quality preset ("QQ", "LQ", "MQ", "HQ", "VHQ"). Defaults to "HQ".

    Returns:
        np.ndarray float32 of shape `(round(samples * target_sr / orig_sr),)`.
    """
    if int(orig_sr) == int(target_sr):
        return np.asarray(waveform, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(waveform, dtype=np.float32), orig_sr, target_sr, quality=quality)


def load_audio(path, sample_rate=SAMPLE_RATE, min_duration=0.05):
    """Load an audio file as float32 mono at `sample_rate`.

    Multi-channel audio is downmixed by averaging the channels. Raises `AudioError`, naming the
    file, when it cannot be read, holds no samples, holds NaN or infinite values, or is shorter
    than `min_duration` seconds.

    Args:
        path: str or path-like. An audio file in any format libsndfile reads (WAV, FLAC, OGG...).
        sample_rate: int. Output sample rate. Defaults to 16000.
        min_duration: float. Shortest duration accepted, in seconds. Defaults to 0.05.

    Returns:
        np.ndarray float32 of shape `(samples,)`, values nominally in [-1, 1].

    Example:
    >>> wav = load_audio("speech.flac")  # doctest: +SKIP
    """
    import soundfile as sf

    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(path, "file does not exist")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError)
        raise AudioError(path, f"cannot decode audio ({exc})") from None
    if data.size == 0:
        raise AudioError(path, "file holds no audio samples")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wav)):
        raise AudioError(path, "audio holds NaN or infinite values")
    wav = resample(wav, sr, sample_rate)
    if len(wav) < min_duration * sample_rate:
        raise AudioError(
            path, f"audio is too short: {len(wav) / sample_rate:.3f} s < {min_duration} s"
        )
    return np.ascontiguousarray(wav, dtype=np.float32)


def write_audio(path, waveform, sample_rate=SAMPLE_RATE, subtype="PCM_16"):
    """Write a mono waveform atomically (temporary name, then rename)."""
    import soundfile as sf

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lstrip(".").upper() or "WAV"
    with atomic_path(path) as tmp:
        sf.write(tmp, np.asarray(waveform, dtype=np.float32), sample_rate, subtype=subtype, format=ext)
