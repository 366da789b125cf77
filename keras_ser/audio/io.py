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


# Peak amplitude below which a file is digital silence (about -80 dBFS: below one 16-bit step
# dithered away, far below any recorded room).
SILENCE_PEAK = 1e-4
# Float formats may overshoot full scale a little after processing; beyond this the file's
# scale is wrong (a float WAV written in 16-bit units, say).
MAX_PEAK = 1.5


def _wav_truncation(path):
    """For a RIFF WAV whose data chunk declares more bytes than the file holds, a message
    saying so; else None (also for streamed WAVs with an unknown size, 0 or 0xFFFFFFFF)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                have = size - f.tell()
                if length not in (0, 0xFFFFFFFF) and length > have + 1:
                    return f"file is truncated: its header declares {length} bytes of audio, it holds {have}"
                return None
            f.seek(length + (length & 1), 1)


def load_audio(path, sample_rate=SAMPLE_RATE, min_duration=0.05):
    """Load an audio file as float32 mono at `sample_rate`.

    Multi-channel audio is downmixed by averaging the channels. Raises `AudioError`, naming the
    file and the problem, when it cannot be read or is truncated (a WAV whose header declares
    more audio than the file holds: decoders read what is left without a word), holds no
    samples, NaN or infinite values, samples beyond ±1.5 (a float file with the wrong scale),
    only digital silence (peak below 1e-4), or is shorter than `min_duration` seconds.

    Args:
        path: str or path-like. An audio file in any format libsndfile reads (WAV, FLAC, OGG...).
        sample_rate: int. Output sample rate. Defaults to 16000.
        min_duration: float. Shortest duration accepted, in seconds. Defaults to 0.05.

    Returns:
        np.ndarray float32 of shape `(samples,)`, values in [-1.5, 1.5] (nominally [-1, 1]).

    Example:
    >>> wav = load_audio("speech.flac")  # doctest: +SKIP
    """
    import soundfile as sf

    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(path, "file does not exist")
    if os.path.isdir(path):
        raise AudioError(path, "is a folder, not an audio file")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError)
        raise AudioError(path, f"cannot decode audio ({exc})") from None
    truncated = _wav_truncation(path)
    if truncated:
        raise AudioError(path, truncated)
    if data.size == 0:
        raise AudioError(path, "file holds no audio samples")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wav)):
        raise AudioError(path, "audio holds NaN or infinite values")
    peak = float(np.max(np.abs(wav)))
    if peak > MAX_PEAK:
        raise AudioError(path, f"samples beyond full scale (peak {peak:.4g}, expected within ±1): "
                               "a float file written with the wrong scale?")
    if peak < SILENCE_PEAK:
        raise AudioError(path, f"digital silence (peak {peak:.2g} < {SILENCE_PEAK:g})")
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
