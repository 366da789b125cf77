"""Feature frontends: pure TensorFlow functions, one preset per paper.

Every frontend maps a zero-padded batch of 16 kHz waveforms plus their lengths to a zero-padded
batch of features plus the number of real frames:

    features, num_frames = compute_features(waveforms, num_samples, PRESETS["mlee"])

Frames are not centred: frame `t` covers samples `[t * hop, t * hop + win_length)`, so
`num_frames = 1 + (num_samples - win_length) // hop_length` and a frame never sees padding. That
is what makes padded and unpadded inputs give identical features (tested), and it is why the
feature values equal librosa's with `center=False` (tested, see `tests/test_frontends.py`).

Presets (`PRESETS`):
    strengthnet: 80 log-mel, 50 ms window / 12.5 ms hop (paper, Liu et al.).
    strengthnet_original: linear STFT magnitude, n_fft 512 / hop 256, Hamming, no log: 257 bins,
        what the original StrengthNet code fed to its Dense(257) projection (option only).
    mlee: log power spectrogram, 40 ms Hamming / 10 ms, DFT 1600 (10 Hz bins), 0-4 kHz: 400 bins.
    epr: 64 log-mel, 25 ms / 10 ms, n_fft 512.
    fg_cme: 40 log filterbank, 25 ms / 10 ms, HTK mel scale from 20 Hz, power spectrum
        (Kaldi-style filter shapes; no dither).
"""

import dataclasses

import numpy as np

from keras_ser.audio.io import SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    """Parameters of a spectral frontend.

    Args:
        name: str. Preset name, for messages and saved configs.
        win_length: int. Window length in samples.
        hop_length: int. Hop in samples.
        n_fft: int. DFT size (>= win_length; the window is zero-padded to it).
        window: str. "hann" or "hamming" (periodic, as librosa/scipy `fftbins=True`).
        power: float. 1.0 for magnitude, 2.0 for power.
        n_mels: int or None. Number of mel bands; None keeps linear frequency bins.
        fmin: float. Lowest mel filter edge in Hz.
        fmax: float or None. Highest mel filter edge in Hz; None means sample_rate / 2.
        mel_scale: str. "slaney" (librosa's default) or "htk".
        mel_norm: str or None. "slaney" (area normalisation, librosa's default) or None.
        max_freq_bins: int or None. Keep only the first bins of a linear spectrogram (MLEE keeps
            400 bins of 10 Hz = 0-4 kHz).
        log: bool. Take `log(x + log_offset)`.
        log_offset: float. Offset added before the log.
        preemphasis: float. Pre-emphasis coefficient applied to the waveform (0 disables).
        sample_rate: int. Defaults to 16000.
    """

    name: str
    win_length: int
    hop_length: int
    n_fft: int
    window: str = "hann"
    power: float = 2.0
    n_mels: int | None = None
    fmin: float = 0.0
    fmax: float | None = None
    mel_scale: str = "slaney"
    mel_norm: str | None = "slaney"
    max_freq_bins: int | None = None
    log: bool = True
    log_offset: float = 1e-6
    preemphasis: float = 0.0
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self):
        if self.n_fft < self.win_length:
            raise ValueError(f"frontend {self.name}: n_fft {self.n_fft} < win_length {self.win_length}")
        if self.window not in ("hann", "hamming"):
            raise ValueError(f"frontend {self.name}: window must be 'hann' or 'hamming', got {self.window!r}")
        if self.mel_scale not in ("slaney", "htk"):
            raise ValueError(f"frontend {self.name}: mel_scale must be 'slaney' or 'htk'")

    @property
    def feature_dim(self):
        """Size of the last axis of the features."""
        if self.n_mels:
            return self.n_mels
        bins = self.n_fft // 2 + 1
        return min(bins, self.max_freq_bins) if self.max_freq_bins else bins

    def num_frames(self, num_samples):
        """Number of frames for `num_samples` samples (NumPy or int); 0 when shorter than a window."""
        n = np.asarray(num_samples)
        return np.maximum(0, 1 + (n - self.win_length) // self.hop_length) * (n >= self.win_length)

    def min_samples(self):
        """Fewest samples that give one frame."""
        return self.win_length

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown frontend keys: {sorted(unknown)}")
        return cls(**d)


PRESETS = {
    "strengthnet": FrontendConfig(
        "strengthnet", win_length=800, hop_length=200, n_fft=1024, window="hann", power=1.0, n_mels=80
    ),
    "strengthnet_original": FrontendConfig(
        "strengthnet_original", win_length=512, hop_length=256, n_fft=512, window="hamming",
        power=1.0, log=False,
    ),
    "mlee": FrontendConfig(
        "mlee", win_length=640, hop_length=160, n_fft=1600, window="hamming", power=2.0,
        max_freq_bins=400,
    ),
    "epr": FrontendConfig("epr", win_length=400, hop_length=160, n_fft=512, window="hann", power=2.0, n_mels=64),
    "fg_cme": FrontendConfig(
        "fg_cme", win_length=400, hop_length=160, n_fft=512, window="hamming", power=2.0, n_mels=40,
        fmin=20.0, mel_scale="htk", mel_norm=None,
    ),
}


def get_frontend_config(preset_or_config):
    """Resolve a preset name, a dict or a `FrontendConfig` to a `FrontendConfig`."""
    if isinstance(preset_or_config, FrontendConfig):
        return preset_or_config
    if isinstance(preset_or_config, dict):
        return FrontendConfig.from_dict(preset_or_config)
    if preset_or_config not in PRESETS:
        raise ValueError(f"unknown frontend preset {preset_or_config!r}; known: {sorted(PRESETS)}")
    return PRESETS[preset_or_config]


# ---------------------------------------------------------------------------------------------
# Mel filterbank (NumPy; identical to librosa.filters.mel for the same arguments).
# ---------------------------------------------------------------------------------------------
def hz_to_mel(frequencies, htk=False):
    """Hz to mel, Slaney's (librosa default) or HTK's formula."""
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(mels, htk=False):
    """Mel to Hz, inverse of `hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sample_rate, n_fft, n_mels, fmin=0.0, fmax=None, htk=False, norm="slaney"):
    """Triangular mel filters of shape `(n_mels, n_fft // 2 + 1)`, float32.

    Same construction as `librosa.filters.mel` (tested to 1e-6 relative).
    """
    fmax = sample_rate / 2.0 if fmax is None else fmax
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    elif norm is not None:
        raise ValueError(f"mel norm must be 'slaney' or None, got {norm!r}")
    return weights.astype(np.float32)


def frontend_matrix(config):
    """The `(n_fft // 2 + 1, feature_dim)` matrix applied to the spectrum, or None for linear bins."""
    if not config.n_mels:
        return None
    fb = mel_filterbank(
        config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax,
        htk=config.mel_scale == "htk", norm=config.mel_norm,
    )
    return fb.T.copy()


# ---------------------------------------------------------------------------------------------
# TensorFlow functions.
# ---------------------------------------------------------------------------------------------
def frames_from_samples(num_samples, config):
    """`num_frames` as a tensor: `max(0, 1 + (num_samples - win) // hop)`, int32."""
    import tensorflow as tf

    n = tf.cast(num_samples, tf.int32)
    frames = 1 + (n - config.win_length) // config.hop_length
    return tf.where(n >= config.win_length, frames, tf.zeros_like(frames))


def compute_features(waveforms, num_samples=None, config="mlee", matrix=None):
    """Features of a batch of zero-padded waveforms.

    Args:
        waveforms: float tensor of shape `(batch, samples)` (or `(samples,)` for one waveform),
            16 kHz, zero-padded after each waveform's end.
        num_samples: int tensor of shape `(batch,)`, real length of each waveform. Defaults to the
            full padded length.
        config: preset name, dict or `FrontendConfig`.
        matrix: optional precomputed `frontend_matrix(config)` (saves rebuilding it).

    Returns:
        `(features, num_frames)`: float32 `(batch, frames, feature_dim)` with every frame at or past
        `num_frames` set to 0, and int32 `(batch,)`.
    """
    import tensorflow as tf

    config = get_frontend_config(config)
    x = tf.convert_to_tensor(waveforms, tf.float32)
    single = x.shape.rank == 1
    if single:
        x = x[tf.newaxis]
    if num_samples is None:
        num_samples = tf.fill([tf.shape(x)[0]], tf.shape(x)[1])
    num_samples = tf.reshape(tf.cast(num_samples, tf.int32), [-1])
    if config.preemphasis:
        x = tf.concat([x[:, :1], x[:, 1:] - config.preemphasis * x[:, :-1]], axis=1)
    # Make sure at least one frame exists so that shapes stay valid for all-short batches.
    short = tf.maximum(0, config.win_length - tf.shape(x)[1])
    x = tf.pad(x, [[0, 0], [0, short]])
    window_fn = tf.signal.hann_window if config.window == "hann" else tf.signal.hamming_window
    stft = tf.signal.stft(
        x, frame_length=config.win_length, frame_step=config.hop_length, fft_length=config.n_fft,
        window_fn=lambda n, dtype: window_fn(n, periodic=True, dtype=dtype), pad_end=False,
    )
    spec = tf.abs(stft)
    if config.power == 2.0:
        spec = tf.square(spec)
    elif config.power != 1.0:
        spec = tf.pow(spec, config.power)
    if config.n_mels:
        if matrix is None:
            matrix = frontend_matrix(config)
        spec = tf.tensordot(spec, tf.convert_to_tensor(matrix, tf.float32), axes=1)
    elif config.max_freq_bins:
        spec = spec[..., : config.max_freq_bins]
    if config.log:
        spec = tf.math.log(spec + config.log_offset)
    num_frames = frames_from_samples(num_samples, config)
    mask = tf.sequence_mask(num_frames, tf.shape(spec)[1], dtype=spec.dtype)
    spec = spec * mask[..., tf.newaxis]
    if single:
        return spec[0], num_frames[0]
    return spec, num_frames


def features_numpy(waveform, config="mlee"):
    """Features of one unpadded NumPy waveform, as a NumPy array `(frames, feature_dim)`.

    Convenience wrapper around `compute_features` for offline extraction.
    """
    config = get_frontend_config(config)
    feats, n = compute_features(np.asarray(waveform, np.float32)[None], None, config)
    return feats[0, : int(n[0])].numpy()
