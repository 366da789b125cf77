"""A seeded, deterministic synthetic emotional-speech corpus: the embedded default.

A parametric source-filter synthesizer (NumPy/SciPy): a Rosenberg glottal pulse train following
an f0 contour with jitter and aspiration noise, a spectral-tilt filter, cascaded formant
resonators per vowel/sonorant, and band-passed noise for fricatives and plosive bursts.

What makes it a useful test corpus:
- speakers differ in f0 level, vocal-tract length (formant scale) and speaking rate;
- each emotion has a prosodic profile (f0 level and range, speaking rate, energy, spectral tilt,
  jitter, breathiness) that scales with a known strength in [0, 1] (`strength` column);
- sentences come from a small vocabulary where some words carry emotion: text helps, never decides;
- word alignments are exact (written as TextGrids);
- simulated annotators label what they perceive: the primary emotion more often when it is
  strong, a blended secondary emotion sometimes, so hard, soft and existence targets differ;
- optionally the emotion changes inside an utterance (`emotion_segments`), so segment-level
  emotion profiles vary.

Sizes: `tiny` (tests, a few seconds to generate), `default` (the demo) and `large` (24 speakers,
for speaker-independent experiments).

Example:
>>> result = generate("/tmp/synth", size="tiny", seed=0)  # doctest: +SKIP
>>> result.manifest.emotion.value_counts()  # doctest: +SKIP
"""

import dataclasses
import functools
import json
import os

import numpy as np
import scipy.signal

from keras_ser.audio.io import SAMPLE_RATE, write_audio
from keras_ser.corpora.alignments import write_textgrid
from keras_ser.corpora.manifest import make_manifest, read_manifest, save_manifest
from keras_ser.utils import data_home, write_json

VERSION = 1
BASE_EMOTIONS = ("neutral", "happy", "sad", "angry", "surprise")
OPTIONAL_EMOTIONS = ("fear", "disgust")


@dataclasses.dataclass(frozen=True)
class Profile:
    """Prosodic change at strength 1 relative to neutral speech."""

    f0_shift: float  # semitones
    f0_range: float  # multiplier of intonation excursions
    rate: float  # multiplier of speaking rate
    energy: float  # dB
    tilt: float  # brightness, -1 (dark) .. +1 (bright)
    jitter: float  # added f0 jitter (fraction)
    breath: float  # added aspiration noise (fraction of source)
    final_rise: float = 0.0  # semitones of rise over the last word


PROFILES = {
    "neutral": Profile(0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0),
    "happy": Profile(3.5, 1.9, 1.12, 4.0, 0.45, 0.004, 0.0),
    "sad": Profile(-2.5, 0.45, 0.72, -7.0, -0.6, 0.012, 0.12),
    "angry": Profile(2.0, 1.4, 1.18, 9.0, 0.9, 0.01, 0.02),
    "surprise": Profile(5.0, 2.3, 0.95, 5.0, 0.3, 0.0, 0.03, final_rise=6.0),
    "fear": Profile(4.0, 0.8, 1.3, 0.0, -0.2, 0.03, 0.1),
    "disgust": Profile(-1.5, 0.9, 0.82, -2.0, -0.35, 0.02, 0.05),
}

NEUTRAL_WORDS = (
    "the table is near the window", "we will meet at noon today", "my sister reads a paper",
    "the road leads to the city", "a letter came this morning", "open the door for them",
    "the house is on the hill", "he sold the old car", "lunch is at one", "the train left early",
)
EMOTION_WORDS = {
    "happy": ("wonderful", "lovely", "great", "fun"),
    "sad": ("lost", "alone", "sorry", "miss"),
    "angry": ("hate", "never", "stupid", "enough"),
    "surprise": ("really", "suddenly", "wow", "unexpected"),
    "fear": ("afraid", "danger", "dark"),
    "disgust": ("gross", "rotten", "awful"),
}

# Vowel formants (Hz, adult male; scaled per speaker) and bandwidths.
_VOWELS = {
    "a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010),
    "o": (570, 840, 2410), "u": (300, 870, 2240), "y": (300, 2100, 2700),
}
_SONORANTS = {"m": (250, 1200, 2300), "n": (250, 1600, 2500), "l": (360, 1300, 2700),
              "r": (420, 1300, 1600), "w": (300, 700, 2200)}
_FRICATIVES = {"s": (4000, 7800, 0.5), "z": (3800, 7600, 0.4), "f": (1200, 7000, 0.15),
               "v": (1200, 6000, 0.15), "h": (500, 3500, 0.12), "x": (3500, 7800, 0.4),
               "c": (2000, 4500, 0.45), "j": (2000, 4500, 0.4)}
_PLOSIVES = {"p": (500, 2000), "b": (400, 1800), "t": (3000, 6000), "d": (2800, 5500),
             "k": (1500, 3500), "g": (1400, 3200), "q": (1500, 3500)}

SIZES = {
    "tiny": dict(n_speakers=4, per_speaker_emotion=4, n_annotators=3, p_change=0.15),
    "default": dict(n_speakers=8, per_speaker_emotion=10, n_annotators=5, p_change=0.15),
    # Speaker-independent models see 6 training speakers in `default` and overfit them; `large`
    # gives 19 (StrengthNet's 8:1:1 split), at three times the training time.
    "large": dict(n_speakers=24, per_speaker_emotion=10, n_annotators=5, p_change=0.15),
}


def _phones(word):
    """A crude letter-to-phone mapping; doubled letters collapse."""
    out, prev = [], None
    for ch in word.lower():
        if ch == prev or not ch.isalpha():
            continue
        prev = ch
        out.append(ch)
    return out


def _resonator_sos(formants, bandwidths, sr, scale):
    sos = []
    for f, bw in zip(formants, bandwidths):
        f = min(f * scale, 0.45 * sr)
        r = np.exp(-np.pi * bw / sr)
        a1, a2 = -2 * r * np.cos(2 * np.pi * f / sr), r * r
        sos.append([1 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    return np.array(sos)


@functools.lru_cache(maxsize=None)
def _bandpass(f_lo, f_hi, sr):
    return scipy.signal.butter(2, [f_lo, min(f_hi, 0.49 * sr)], "bandpass", fs=sr, output="sos")


def _rosenberg(phase, open_q=0.6, close_q=0.16):
    """Rosenberg glottal flow pulse for a phase in [0, 1)."""
    tp = open_q - close_q
    g = np.zeros_like(phase)
    rise = phase < tp
    g[rise] = 0.5 * (1 - np.cos(np.pi * phase[rise] / tp))
    fall = (phase >= tp) & (phase < open_q)
    g[fall] = np.cos(0.5 * np.pi * (phase[fall] - tp) / close_q)
    return g


@dataclasses.dataclass
class Speaker:
    speaker_id: str
    gender: str
    f0: float
    formant_scale: float
    rate: float
    seed: int


def make_speakers(n, rng):
    speakers = []
    for i in range(n):
        female = i % 2 == 1
        speakers.append(Speaker(
            speaker_id=f"synth_s{i + 1:02d}", gender="f" if female else "m",
            f0=float(rng.uniform(185, 235) if female else rng.uniform(95, 130)),
            formant_scale=float(rng.uniform(1.1, 1.2) if female else rng.uniform(0.95, 1.03)),
            rate=float(rng.uniform(0.9, 1.1)), seed=int(rng.integers(2**31)),
        ))
    return speakers


def _mix_profile(parts):
    """Weighted mixture of (profile, weight) at given strengths: list of (emotion, strength, weight)."""
    vals = {k: 0.0 for k in ("f0_shift", "log_range", "log_rate", "energy", "tilt", "jitter", "breath", "final_rise")}
    for emotion, strength, weight in parts:
        p = PROFILES[emotion]
        s = strength * weight
        vals["f0_shift"] += s * p.f0_shift
        vals["log_range"] += s * np.log(p.f0_range)
        vals["log_rate"] += s * np.log(p.rate)
        vals["energy"] += s * p.energy
        vals["tilt"] += s * p.tilt
        vals["jitter"] += s * p.jitter
        vals["breath"] += s * p.breath
        vals["final_rise"] += s * p.final_rise
    return vals


def synthesize(words, word_params, speaker, rng, sr=SAMPLE_RATE):
    """Synthesize one utterance.

    Args:
        words: list of str.
        word_params: list (one per word) of dicts from `_mix_profile`.
        speaker: `Speaker`.
        rng: np.random.Generator.

    Returns:
        `(waveform float32, [(word, start_s, end_s)])`.
    """
    segs = []  # (kind, phone, start, end, word_index)
    t = int(rng.uniform(0.12, 0.22) * sr)
    alignment = []
    for wi, (word, prm) in enumerate(zip(words, word_params)):
        rate = speaker.rate * np.exp(prm["log_rate"])
        w_start = t
        for ph in _phones(word):
            if ph in _VOWELS:
                dur = 0.095
            elif ph in _SONORANTS:
                dur = 0.06
            elif ph in _PLOSIVES:
                dur = 0.055
            else:
                dur = 0.075
            n = int(dur / rate * rng.uniform(0.85, 1.15) * sr)
            segs.append((ph, t, t + n, wi))
            t += n
        alignment.append((word, w_start / sr, t / sr))
        t += int(rng.uniform(0.03, 0.09) / rate * sr)
    total = t + int(rng.uniform(0.12, 0.22) * sr)

    # Per-sample prosody tracks, piecewise constant per word then smoothed (20 ms).
    idx = np.zeros(total, dtype=int)
    for wi, (_, s, e) in enumerate(alignment):
        a, b = int(s * sr), int(e * sr)
        idx[a:b] = wi
        if wi + 1 < len(alignment):
            idx[b: int(alignment[wi + 1][1] * sr)] = wi
    idx[int(alignment[-1][2] * sr):] = len(alignment) - 1

    def track(key):
        v = np.array([p[key] for p in word_params], dtype=np.float64)
        if np.all(v == v[0]):
            return np.full(total, v[0])
        v = v[idx]
        k = int(0.02 * sr)
        c = np.cumsum(np.pad(v, (k + 1, k), mode="edge"))
        return (c[2 * k + 1:] - c[: -(2 * k + 1)]) / (2 * k + 1)

    time = np.arange(total) / sr
    # Intonation: declination + one accent per word (log f0), scaled by the emotion's range.
    intonation = -0.12 * time / time[-1]
    for (_, s, e) in alignment:
        c = 0.5 * (s + e)
        intonation += rng.uniform(0.04, 0.1) * np.exp(-0.5 * ((time - c) / max(0.25 * (e - s), 0.03)) ** 2)
    rise = np.zeros(total)
    last_s, last_e = alignment[-1][1], alignment[-1][2]
    ramp = np.clip((time - last_s) / max(last_e - last_s, 1e-3), 0, 1)
    rise += ramp * track("final_rise") / 12 * np.log(2)
    log_f0 = (np.log(speaker.f0) + track("f0_shift") / 12 * np.log(2)
              + np.exp(track("log_range")) * intonation + rise)
    jitter = 0.004 + track("jitter")
    # Jitter as f0 noise held over ~5 ms.
    hold = int(0.005 * sr)
    noise = np.repeat(rng.standard_normal(total // hold + 1), hold)[:total]
    f0 = np.exp(log_f0) * (1 + jitter * noise)
    phase = np.cumsum(f0 / sr) % 1.0
    flow = _rosenberg(phase)
    source = np.diff(flow, prepend=0.0) * sr / speaker.f0 * 0.05  # lip radiation
    # Spectral tilt: blend the bright source with a low-passed copy.
    dark = scipy.signal.lfilter([0.35], [1, -0.65], source)
    bright = 0.5 + 0.5 * np.clip(track("tilt"), -1, 1)
    source = bright * source + (1 - bright) * dark * 1.5
    breath = 0.03 + track("breath")
    aspiration = rng.standard_normal(total) * np.std(source) * breath

    out = np.zeros(total)
    xf = int(0.008 * sr)
    bws = (80, 110, 160)
    for ph, a, b, _word in segs:
        lo, hi = max(0, a - xf), min(total, b + xf)
        n = hi - lo
        env = np.ones(n)
        ramp_n = min(xf * 2, n // 2)
        if ramp_n > 0:
            env[:ramp_n] = np.linspace(0, 1, ramp_n)
            env[-ramp_n:] = np.linspace(1, 0, ramp_n)
        if ph in _VOWELS or ph in _SONORANTS:
            formants = _VOWELS.get(ph) or _SONORANTS[ph]
            sos = _resonator_sos(formants, bws, sr, speaker.formant_scale)
            x = source[lo:hi] + aspiration[lo:hi]
            gain = 1.0 if ph in _VOWELS else 0.35
            out[lo:hi] += gain * scipy.signal.sosfilt(sos, x) * env
        elif ph in _FRICATIVES:
            f_lo, f_hi, amp = _FRICATIVES[ph]
            sos = _bandpass(f_lo, f_hi, sr)
            out[lo:hi] += amp * 0.2 * scipy.signal.sosfilt(sos, rng.standard_normal(n)) * env
        else:
            f_lo, f_hi = _PLOSIVES[ph]
            burst = int(0.012 * sr)
            sos = _bandpass(f_lo, f_hi, sr)
            bstart = min(lo + (n * 2) // 3, hi - burst)
            seg = scipy.signal.sosfilt(sos, rng.standard_normal(burst)) * np.hanning(burst)
            out[bstart: bstart + burst] += 0.25 * seg
    # Loudness: neutral speech at -26 dBFS RMS, shifted by the emotion's energy per word.
    active = np.abs(out) > 0
    rms = np.sqrt(np.mean(out[active] ** 2)) if active.any() else 1.0
    out = out / rms * 10 ** ((-26 + track("energy")) / 20)
    out += rng.standard_normal(total) * 10 ** (-65 / 20)
    peak = np.max(np.abs(out))
    if peak > 0.98:
        out *= 0.98 / peak
    return out.astype(np.float32), [(w, round(s, 5), round(e, 5)) for w, s, e in alignment]


def _sentence(emotion, strength, rng, emotions):
    words = NEUTRAL_WORDS[rng.integers(len(NEUTRAL_WORDS))].split()
    n = int(rng.integers(3, len(words) + 1))
    words = words[:n]
    others = [e for e in emotions if e != "neutral" and e in EMOTION_WORDS]
    cue = None
    if emotion != "neutral" and rng.random() < 0.2 + 0.4 * strength:
        cue = emotion
    elif rng.random() < 0.15 and others:
        cue = others[rng.integers(len(others))]
    if cue is not None:
        vocab = EMOTION_WORDS[cue]
        words.insert(int(rng.integers(0, len(words) + 1)), vocab[rng.integers(len(vocab))])
    return words


def _annotate(parts, n_annotators, reliabilities, rng, emotions):
    """Simulated annotators. `parts`: list of (emotion, strength, weight) perceived in the utterance."""
    labels = []
    k = len(emotions)
    for a in range(n_annotators):
        p = np.full(k, 0.03)
        for emotion, strength, weight in parts:
            i = emotions.index(emotion)
            if emotion == "neutral":
                p[i] += 0.9 * reliabilities[a] * weight
            else:
                p[i] += reliabilities[a] * weight * (0.25 + 0.75 * strength)
                p[emotions.index("neutral")] += weight * 0.5 * (1 - strength)
        p /= p.sum()
        first = emotions[rng.choice(k, p=p)]
        labs = [first]
        # Occasionally a second label for a clearly perceived blend.
        if len(parts) > 1 and rng.random() < 0.35:
            second = max(parts[1:], key=lambda q: q[2])[0]
            if second != first:
                labs.append(second)
        labels.append(labs)
    return labels


def generate(out_dir, size="tiny", seed=0, emotions=BASE_EMOTIONS, n_speakers=None,
             per_speaker_emotion=None, n_annotators=None, p_change=None, p_blend=0.4, force=False):
    """Generate (or reuse) a synthetic corpus in `out_dir` and return its `LoadResult`.

    Args:
        out_dir: str. Folder to write `wav/`, `textgrid/`, `manifest.jsonl`, `corpus.json`.
        size: str. "tiny", "default" or "large" (see `SIZES`); the other arguments override it.
        seed: int. Everything is determined by it.
        emotions: tuple of str. Must include "neutral"; from `PROFILES`.
        n_speakers, per_speaker_emotion, n_annotators: int. Corpus size and annotators.
        p_change: float. Probability that the emotion changes inside an utterance.
        p_blend: float. Probability that an emotional utterance blends in a second emotion.
        force: bool. Regenerate even when an identical corpus exists.

    Generation is idempotent: an existing corpus with the same parameters is loaded instead.
    Writes are atomic, and `corpus.json` is written last, so an interrupted run is redone.
    """
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; known: {sorted(SIZES)}")
    if "neutral" not in emotions or any(e not in PROFILES for e in emotions):
        raise ValueError(f"emotions must include 'neutral' and come from {sorted(PROFILES)}")
    params = dict(SIZES[size])
    for key, val in (("n_speakers", n_speakers), ("per_speaker_emotion", per_speaker_emotion),
                     ("n_annotators", n_annotators), ("p_change", p_change)):
        if val is not None:
            params[key] = val
    params.update(seed=int(seed), emotions=list(emotions), p_blend=p_blend, version=VERSION,
                  sample_rate=SAMPLE_RATE)
    meta_path = os.path.join(out_dir, "corpus.json")
    if not force and os.path.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f) == params:
                return load(out_dir)
    os.makedirs(os.path.join(out_dir, "wav"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "textgrid"), exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)

    emotions = list(emotions)
    rng = np.random.default_rng(seed)
    speakers = make_speakers(params["n_speakers"], rng)
    reliabilities = rng.uniform(0.7, 1.0, size=params["n_annotators"])
    rows = []
    for spk in speakers:
        srng = np.random.default_rng(spk.seed)
        n_utt = 0
        for emotion in emotions:
            for _ in range(params["per_speaker_emotion"]):
                n_utt += 1
                utt = f"{spk.speaker_id}_{n_utt:04d}"
                strength = 0.0 if emotion == "neutral" else float(srng.uniform(0.1, 1.0))
                parts = [(emotion, strength if emotion != "neutral" else 1.0, 1.0)]
                if emotion != "neutral" and srng.random() < p_blend:
                    others = [e for e in emotions if e not in ("neutral", emotion)]
                    if others:
                        w = float(srng.uniform(0.15, 0.45))
                        parts = [(emotion, strength, 1.0 - w), (others[srng.integers(len(others))], strength, w)]
                words = _sentence(emotion, strength, srng, emotions)
                change = emotion != "neutral" and len(words) >= 4 and srng.random() < params["p_change"]
                n_first = int(srng.integers(1, len(words) // 2 + 1)) if change else 0
                word_params = []
                for wi in range(len(words)):
                    if wi < n_first:
                        word_params.append(_mix_profile([("neutral", 0.0, 1.0)]))
                    else:
                        word_params.append(_mix_profile(parts))
                wav, alignment = synthesize(words, word_params, spk, srng)
                duration = len(wav) / SAMPLE_RATE
                segments = []
                if change:
                    cut = alignment[n_first][1]
                    segments = [(0.0, cut, "neutral", 0.0), (cut, duration, emotion, strength)]
                else:
                    segments = [(0.0, duration, emotion, strength)]
                frac = 1.0 - (alignment[n_first][1] / duration if change else 0.0)
                perceived = [(e, s, w * frac) for e, s, w in parts]
                if change:
                    perceived.append(("neutral", 1.0, 1.0 - frac))
                annotations = _annotate(perceived, params["n_annotators"], reliabilities, srng, emotions)
                wav_rel = os.path.join("wav", utt + ".wav")
                tg_rel = os.path.join("textgrid", utt + ".TextGrid")
                write_audio(os.path.join(out_dir, wav_rel), wav)
                write_textgrid(os.path.join(out_dir, tg_rel), alignment, duration)
                rows.append({
                    "utterance_id": utt, "path": wav_rel, "corpus": "synthetic",
                    "speaker": spk.speaker_id, "gender": spk.gender, "emotion": emotion,
                    "intensity": None if emotion == "neutral" else ("strong" if strength >= 0.55 else "normal"),
                    "strength": strength, "text": " ".join(words), "annotations": annotations,
                    "words": alignment, "duration": duration, "session": spk.speaker_id,
                    "language": "en", "textgrid": tg_rel,
                    "blend": parts[1][0] if len(parts) > 1 else None,
                    "blend_weight": parts[1][2] if len(parts) > 1 else 0.0,
                    "emotion_segments": segments,
                })
    result = make_manifest(rows)
    save_manifest(result.manifest, os.path.join(out_dir, "manifest.jsonl"))
    write_json(params, meta_path)
    return load(out_dir)


def pure_mask(manifest):
    """Boolean array: utterances with one emotion at one strength throughout (no blended second
    emotion, no change of emotion inside). Manifests without the `blend` / `emotion_segments`
    columns (other corpora) count every utterance as pure."""
    return ~blend_mask(manifest) & ~change_mask(manifest)


def blend_mask(manifest):
    """Boolean array: utterances with a blended second emotion (none without a `blend` column)."""
    if "blend" not in manifest:
        return np.zeros(len(manifest), bool)
    return manifest["blend"].notna().to_numpy()


def change_mask(manifest):
    """Boolean array: utterances whose emotion changes inside (more than one `emotion_segments`
    entry; none without that column)."""
    if "emotion_segments" not in manifest:
        return np.zeros(len(manifest), bool)
    return np.array([isinstance(s, list) and len(s) > 1 for s in manifest["emotion_segments"]], bool)


def load(root):
    """Load a generated synthetic corpus (paths made absolute)."""
    path = os.path.join(root, "manifest.jsonl")
    if not os.path.exists(os.path.join(root, "corpus.json")) or not os.path.exists(path):
        raise FileNotFoundError(f"{root}: not a complete synthetic corpus (no corpus.json/manifest.jsonl)")
    return make_manifest(read_manifest(path).to_dict(orient="records"))


def default_root(size="tiny", seed=0):
    """Where the CLI keeps generated corpora: `$KERAS_SER_DATA` or `~/.cache/keras_ser`."""
    return os.path.join(data_home(), "synthetic", f"{size}-seed{seed}")
