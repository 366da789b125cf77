import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from keras_ser.audio import (
    PRESETS,
    FeatureStats,
    compute_features,
    features_numpy,
    load_audio,
    mel_filterbank,
    speed_perturb,
)
from keras_ser.errors import AudioError


def _tone(sr=16000, seconds=0.5, f=220.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


# --- loading ---------------------------------------------------------------------------------
def test_load_resamples_and_downmixes(tmp_path):
    t = np.arange(44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, -left * 0.0 + left], axis=1)
    for ext in ("wav", "flac", "ogg"):
        p = tmp_path / f"x.{ext}"
        sf.write(p, stereo, 44100)
        wav = load_audio(p)
        assert wav.dtype == np.float32 and wav.ndim == 1
        assert abs(len(wav) - 16000) <= 1
        # 440 Hz survives resampling: the spectrum peaks there.
        peak = np.argmax(np.abs(np.fft.rfft(wav))) * 16000 / len(wav)
        assert abs(peak - 440) < 3


@pytest.mark.parametrize("problem, make", [
    ("does not exist", lambda p: None),
    ("cannot decode", lambda p: p.write_bytes(b"RIFF....not really a wav file")),
    ("no audio samples", lambda p: sf.write(p, np.zeros((0,)), 16000)),
    ("NaN or infinite", lambda p: sf.write(p, np.array([0.1, np.nan] * 1000), 16000, subtype="FLOAT")),
    ("too short", lambda p: sf.write(p, np.full(100, 0.1), 16000)),
    # Decoders read what is left of a truncated WAV without a word; the header says how much is missing.
    ("truncated: its header declares 64000 bytes of audio, it holds 31978",
     lambda p: (sf.write(p, np.full(32000, 0.1), 16000, subtype="PCM_16"), p.write_bytes(p.read_bytes()[:32022]))),
    ("digital silence", lambda p: sf.write(p, np.zeros(16000), 16000)),
    ("samples beyond full scale (peak 1000", lambda p: sf.write(p, np.linspace(-1000, 1000, 16000), 16000,
                                                                subtype="FLOAT")),
    ("is a folder", lambda p: p.mkdir()),
])
def test_load_errors_name_the_file(tmp_path, problem, make):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError) as info:
        load_audio(p)
    assert str(p) in str(info.value) and problem in str(info.value)


# --- frontends -------------------------------------------------------------------------------
@pytest.mark.parametrize("htk, norm", [(False, "slaney"), (True, None)])
def test_mel_filterbank_matches_librosa(htk, norm):
    import librosa

    ours = mel_filterbank(16000, 512, 40, fmin=20, fmax=None, htk=htk, norm=norm)
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20, htk=htk, norm=norm)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_frontend_parity_with_librosa(name):
    """Each preset equals librosa on the same frames; tolerance: 1e-3 absolute on log values
    (float32 FFT vs float64), 1e-4 relative on linear magnitudes."""
    import librosa

    c = PRESETS[name]
    rng = np.random.default_rng(1)
    y = (rng.standard_normal(12000) * 0.1).astype(np.float32)
    ours = features_numpy(y, c)
    # librosa centres a win_length window inside an n_fft frame; shift the signal to match.
    off = (c.n_fft - c.win_length) // 2
    yp = np.concatenate([np.zeros(off, np.float32), y])
    S = np.abs(librosa.stft(yp, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                            window=c.window, center=False)) ** c.power
    if c.n_mels:
        S = librosa.feature.melspectrogram(S=S, sr=16000, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax,
                                           htk=c.mel_scale == "htk", norm=c.mel_norm)
    elif c.max_freq_bins:
        S = S[: c.max_freq_bins]
    if c.log:
        S = np.log(S + c.log_offset)
    ref = S.T
    n = min(len(ref), len(ours))
    assert n >= len(ours) - (off // c.hop_length + 1)
    assert ours.shape[1] == c.feature_dim
    if c.log:
        np.testing.assert_allclose(ours[:n], ref[:n], atol=1e-3)
    else:
        np.testing.assert_allclose(ours[:n], ref[:n], rtol=1e-4, atol=1e-6)


def test_preset_dimensions():
    assert {k: v.feature_dim for k, v in PRESETS.items()} == {
        "strengthnet": 80, "strengthnet_original": 257, "mlee": 400, "epr": 64, "fg_cme": 40,
    }


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_padded_and_unpadded_features_are_equal(name):
    c = PRESETS[name]
    a, b = _tone(seconds=0.7), _tone(seconds=0.4, f=330)
    batch = np.zeros((2, len(a) + 3000), np.float32)
    batch[0, : len(a)] = a
    batch[1, : len(b)] = b
    feats, n = compute_features(batch, [len(a), len(b)], c)
    feats, n = feats.numpy(), n.numpy()
    np.testing.assert_allclose(feats[0, : n[0]], features_numpy(a, c), atol=1e-5)
    np.testing.assert_allclose(feats[1, : n[1]], features_numpy(b, c), atol=1e-5)
    assert n.tolist() == c.num_frames([len(a), len(b)]).tolist()
    assert np.all(feats[1, n[1]:] == 0) and np.all(feats[0, n[0]:] == 0)


def test_frontend_layer_round_trips():
    import keras

    from keras_ser.layers import AudioFrontend

    wav = keras.Input((None,), name="waveform")
    ns = keras.Input((), dtype="int32", name="num_samples")
    feats, n = AudioFrontend("fg_cme")(wav, ns)
    model = keras.Model({"waveform": wav, "num_samples": ns}, {"features": feats, "num_frames": n})
    x = {"waveform": np.stack([_tone(), _tone(f=500)]), "num_samples": np.array([8000, 6000])}
    out = model(x)
    clone = keras.Model.from_config(model.get_config())
    np.testing.assert_allclose(clone(x)["features"], out["features"])
    assert out["features"].shape[-1] == 40


def test_masked_normalization_keeps_padding_zero():
    from keras_ser.layers import MaskedNormalization

    layer = MaskedNormalization(mean=np.ones(3), std=2 * np.ones(3))
    x = np.ones((2, 4, 3), np.float32) * 5
    y = layer(x, np.array([4, 2])).numpy()
    assert np.allclose(y[0], 2.0) and np.allclose(y[1, :2], 2.0) and np.all(y[1, 2:] == 0)


@pytest.mark.parametrize("mode", ["mean", "meanvar"])
def test_utterance_normalization_uses_each_utterance_s_real_frames(mode):
    from keras_ser.layers import UtteranceNormalization

    rng = np.random.default_rng(0)
    x = np.zeros((2, 6, 3), np.float32)
    x[0] = rng.normal(4, 3, (6, 3))
    x[1, :4] = rng.normal(-2, 0.5, (4, 3))
    x[1, 4:] = 100.0  # beyond num_frames: must not enter the statistics, and comes out 0
    layer = UtteranceNormalization(mode)
    y = layer(x, np.array([6, 4])).numpy()
    for i, n in enumerate([6, 4]):
        want = x[i, :n] - x[i, :n].mean(0)
        if mode == "meanvar":
            want = want / x[i, :n].std(0)
        np.testing.assert_allclose(y[i, :n], want, rtol=1e-4, atol=1e-5)
    assert np.all(y[1, 4:] == 0)
    again = UtteranceNormalization.from_config(layer.get_config())
    assert again.mode == mode
    with pytest.raises(ValueError, match="'mean' or 'meanvar'"):
        UtteranceNormalization("cmvn")


def test_feature_stats_merge_equals_whole():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 4)), rng.normal(-1, 1, (70, 4))
    merged = FeatureStats.from_features(a).merge(FeatureStats.from_features(b))
    whole = np.concatenate([a, b])
    np.testing.assert_allclose(merged.mean, whole.mean(0))
    np.testing.assert_allclose(merged.std(), whole.std(0))
    back = FeatureStats.from_dict(merged.to_dict())
    np.testing.assert_allclose(back.mean, merged.mean)


# --- augmentation ----------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_changes_duration_and_pitch(factor):
    y = _tone(seconds=1.0, f=200.0)
    z = speed_perturb(y, factor)
    assert abs(len(z) - len(y) / factor) <= 2
    peak = np.argmax(np.abs(np.fft.rfft(z))) * 16000 / len(z)
    assert abs(peak - 200 * factor) < 3


def test_spec_augment_layer_masks_real_frames_in_training_only():
    from keras_ser.layers import SpecAugment

    rng = np.random.default_rng(0)
    n = np.array([60, 35, 12, 1], "int32")
    x = rng.uniform(0.5, 1.5, (4, 60, 40)).astype("float32")  # no zeros in the real frames
    for i, k in enumerate(n):
        x[i, k:] = 0
    layer = SpecAugment(freq_mask_param=6, num_freq_masks=2, time_mask_param=10, num_time_masks=2, seed=1)
    np.testing.assert_array_equal(layer(x, n, training=False), x)
    y = np.asarray(layer(x, n, training=True))
    assert np.all((y == x) | (y == 0))
    masked_any = 0
    for i, k in enumerate(n):
        assert np.all(y[i, k:] == 0)
        rows = np.flatnonzero(np.all(y[i, :k] == 0, axis=1))  # masked frames, inside the real ones
        live = np.setdiff1d(np.arange(k), rows)
        cols = np.flatnonzero(np.all(y[i, live] == 0, axis=0)) if len(live) else []  # masked bins
        assert len(rows) <= min(2 * 10, k) and len(cols) <= 2 * 6
        # Everything zeroed is explained by the masked rows and columns.
        zero = y[i, :k] == 0
        zero[rows] = False
        zero[:, cols] = False
        assert not zero.any()
        masked_any += len(rows) + len(cols)
    assert masked_any > 0
    assert not np.array_equal(y, np.asarray(layer(x, n, training=True)))  # fresh masks per call
    clone = SpecAugment.from_config(layer.get_config())
    assert clone.time_mask_param == 10 and clone.num_freq_masks == 2


def test_channel_augment_adds_one_smooth_curve_per_utterance_in_training_only():
    from keras_ser.layers import ChannelAugment

    rng = np.random.default_rng(0)
    n = np.array([60, 35, 1], "int32")
    x = rng.standard_normal((3, 60, 40)).astype("float32")
    for i, k in enumerate(n):
        x[i, k:] = 0
    layer = ChannelAugment(gain=1.0, shape=0.5, order=3, seed=1)
    np.testing.assert_array_equal(layer(x, n, training=False), x)
    d = np.asarray(layer(x, n, training=True)) - x
    curves = []
    for i, k in enumerate(n):
        assert np.all(d[i, k:] == 0)  # padding stays 0
        np.testing.assert_allclose(d[i, :k], np.broadcast_to(d[i, :1], (k, 40)), atol=1e-5)  # one curve per utterance
        curves.append(d[i, 0])
    # Smooth: a level plus 3 cosines over the bins, so each curve is exactly that least-squares fit.
    f = (np.arange(40) + 0.5) / 40
    basis = np.cos(np.pi * np.arange(4)[:, None] * f[None, :]).T
    for c in curves:
        coef = np.linalg.lstsq(basis, c, rcond=None)[0]
        np.testing.assert_allclose(basis @ coef, c, atol=1e-4)
    assert not np.allclose(curves[0], curves[1])  # a fresh channel per utterance
    flat = ChannelAugment(gain=1.0, shape=0.0, seed=2)  # level only: the same offset in every bin
    d = np.asarray(flat(x, n, training=True)) - x
    np.testing.assert_allclose(d[0, :60], d[0, 0, 0], atol=1e-5)
    assert ChannelAugment.from_config(layer.get_config()).order == 3
    with pytest.raises(ValueError, match="must be >= 0"):
        ChannelAugment(gain=-1)


def test_importing_audio_imports_neither_tensorflow_nor_tfio():
    code = "import sys, keras_ser.audio, keras_ser.corpora, tfrecords_tools; " \
           "print('tensorflow' in sys.modules, 'tensorflow_io' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
