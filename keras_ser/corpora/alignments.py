"""Word alignments: `(word, start_s, end_s)` lists from forced aligners and ASR tools.

Readers (silences are dropped; a malformed file raises `AlignmentError` naming it and the line):

    read_textgrid(path, tier)     Praat TextGrid, long text format (Montreal Forced Aligner, ...)
    read_ctm(path)                NIST CTM: `utt channel start duration word [conf]`, by utterance
    read_word_json(path)          ASR word timestamps: `{"words": [{"word", "start", "end"}]}`
                                  (WhisperX / faster-whisper style, also `text` for `word` and
                                  nested `segments[].words`)
    IEMOCAP's forced alignments and Emo-DB's syllable timings: see `keras_ser.corpora.iemocap`
    and `keras_ser.corpora.emodb`.

`approximate_alignment` spreads a transcript's words over the voiced region of the waveform in
proportion to their lengths, for corpora without timings (RAVDESS): it is labelled approximate
wherever it is used. `check_alignment` compares an alignment with its transcript and raises
`AlignmentError` naming the file on a mismatch, never cropping silently.
"""

import json
import re

import numpy as np

from keras_ser.errors import AlignmentError
from keras_ser.utils import write_text

_SILENCE = {"", "sil", "sp", "<sil>", "<s>", "</s>", "#", "pau"}


def write_textgrid(path, words, duration, tier="words"):
    """Write word intervals as a Praat TextGrid (long format), filling gaps with empty intervals.

    Args:
        path: str. Output file (written atomically).
        words: list of `(word, start_s, end_s)`, sorted, non-overlapping.
        duration: float. Total duration in seconds.
        tier: str. Tier name. Defaults to "words".
    """
    intervals, t = [], 0.0
    for w, s, e in words:
        if s < t - 1e-9 or e <= s or e > duration + 1e-6:
            raise AlignmentError(f"{path}: interval {w!r} [{s}, {e}] overlaps, is empty or ends after {duration}")
        if s > t + 1e-9:
            intervals.append((t, s, ""))
        intervals.append((s, e, w))
        t = e
    if duration > t + 1e-9:
        intervals.append((t, duration, ""))
    lines = [
        'File type = "ooTextFile"', 'Object class = "TextGrid"', "",
        "xmin = 0", f"xmax = {duration!r}", "tiers? <exists>", "size = 1", "item []:",
        "    item [1]:", '        class = "IntervalTier"', f'        name = "{tier}"',
        "        xmin = 0", f"        xmax = {duration!r}", f"        intervals: size = {len(intervals)}",
    ]
    for i, (s, e, w) in enumerate(intervals, 1):
        text = w.replace('"', '""')
        lines += [f"        intervals [{i}]:", f"            xmin = {s!r}", f"            xmax = {e!r}",
                  f'            text = "{text}"']
    write_text("\n".join(lines) + "\n", path)


_INTERVAL = re.compile(
    r'xmin\s*=\s*([-\d.eE+]+)\s*xmax\s*=\s*([-\d.eE+]+)\s*text\s*=\s*"((?:[^"]|"")*)"', re.S
)


def read_textgrid(path, tier="words"):
    """Read the word intervals of one tier of a TextGrid (long format) as `(word, start, end)`.

    Silence labels (empty, "sil", "sp", "<s>", ...) are dropped. Raises `AlignmentError` naming
    the file when the tier is missing or intervals are malformed.
    """
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        text = f.read()
    items = re.split(r"item\s*\[\d+\]\s*:", text)[1:]
    names = []
    for item in items:
        m = re.search(r'name\s*=\s*"([^"]*)"', item)
        names.append(m.group(1) if m else "")
        if m and m.group(1) == tier:
            out = []
            for s, e, w in _INTERVAL.findall(item):
                w = w.replace('""', '"').strip()
                if w.lower() not in _SILENCE:
                    out.append((w, float(s), float(e)))
            return out
    raise AlignmentError(f"{path}: no tier named {tier!r} (tiers: {names})")


def read_ctm(path):
    """A CTM file as `{utterance: [(word, start, end), ...]}` (start relative to the utterance).

    Lines: `utterance channel start duration word [confidence]`; `;;` lines are comments.
    """
    out = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith(";;"):
                continue
            if len(parts) < 5:
                raise AlignmentError(f"{path}:{i}: expected 'utterance channel start duration word', got {line.strip()!r}")
            try:
                start, dur = float(parts[2]), float(parts[3])
            except ValueError:
                raise AlignmentError(f"{path}:{i}: start and duration must be numbers, got {parts[2]!r} {parts[3]!r}") from None
            if dur < 0 or start < 0:
                raise AlignmentError(f"{path}:{i}: negative start or duration")
            if parts[4].lower() not in _SILENCE:
                out.setdefault(parts[0], []).append((parts[4], start, start + dur))
    return {u: sorted(w, key=lambda x: x[1]) for u, w in out.items()}


def read_word_json(path):
    """Word timestamps from an ASR tool's JSON: a `words` list (or `segments[].words`) of objects
    with `word` (or `text`), `start` and `end` in seconds."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise AlignmentError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, dict) and "words" in data:
        items = data["words"]
    elif isinstance(data, dict) and "segments" in data:
        items = [w for seg in data["segments"] for w in seg.get("words", [])]
    elif isinstance(data, list):
        items = data
    else:
        raise AlignmentError(f"{path}: expected a 'words' or 'segments' list")
    out = []
    for i, w in enumerate(items):
        word = w.get("word", w.get("text")) if isinstance(w, dict) else None
        if word is None or "start" not in w or "end" not in w:
            raise AlignmentError(f"{path}: word {i} lacks 'word'/'text', 'start' or 'end': {w!r}")
        word = str(word).strip()
        if word.lower() in _SILENCE:
            continue
        s, e = float(w["start"]), float(w["end"])
        if e < s:
            raise AlignmentError(f"{path}: word {i} {word!r} ends ({e}) before it starts ({s})")
        out.append((word, s, e))
    return out


def normalise_word(word):
    """Lower case without surrounding punctuation: how transcripts and alignments are compared."""
    return re.sub(r"^[^\w']+|[^\w']+$", "", word.lower())


def transcript_words(text):
    return [w for w in (normalise_word(t) for t in text.split()) if w]


def check_alignment(words, text, source, duration=None, tolerance=0.05):
    """Raise `AlignmentError` naming `source` unless `words` spell `text` (normalised) with
    ordered, non-negative intervals that end within `duration` (+ tolerance). Returns `words`."""
    got = [normalise_word(w) for w, _, _ in words]
    want = transcript_words(text)
    if got != want:
        i = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        raise AlignmentError(
            f"{source}: the alignment does not match the transcript at word {i + 1}: "
            f"alignment {got[i:i + 3]!r}, transcript {want[i:i + 3]!r} ({len(got)} vs {len(want)} words)")
    last = 0.0
    for w, s, e in words:
        if s < 0 or e < s or s < last - tolerance:
            raise AlignmentError(f"{source}: word {w!r} [{s}, {e}] is out of order or negative")
        if duration is not None and e > duration + tolerance:
            raise AlignmentError(f"{source}: word {w!r} ends at {e} s, after the audio ({duration:.3f} s)")
        last = e
    return words


def voiced_region(waveform, sample_rate=16000, frame=0.025, hop=0.010, threshold_db=35.0):
    """`(start_s, end_s)` of the region whose frame energy is within `threshold_db` of the loudest."""
    x = np.asarray(waveform, np.float64)
    n, h = int(frame * sample_rate), int(hop * sample_rate)
    if len(x) < n:
        return 0.0, len(x) / sample_rate
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::h]
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(db > db.max() - threshold_db)
    return on[0] * hop, min(len(x) / sample_rate, on[-1] * hop + frame)


def approximate_alignment(text, waveform, sample_rate=16000):
    """APPROXIMATE word timings: the transcript's words spread over the voiced region in
    proportion to their lengths in letters (+1 for the gap). Not a forced alignment: use it only
    where a corpus has no timings, and say so."""
    words = transcript_words(text)
    if not words:
        raise AlignmentError("approximate_alignment: empty transcript")
    start, end = voiced_region(waveform, sample_rate)
    weights = np.array([len(w) + 1.0 for w in words])
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [(w, round(float(a), 4), round(float(b), 4)) for w, a, b in zip(words, edges[:-1], edges[1:])]
