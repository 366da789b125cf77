"""Berlin Database of Emotional Speech (Emo-DB; Burkhardt et al., 2005).

Layout: `ROOT/wav/SSTTTEV.wav` (speaker SS, text TTT, emotion E, version V), optionally
`ROOT/silb/SSTTTEV.silb` (syllable timings) and `ROOT/erkennung.txt` (listener recognition rates).

Word timings come from the hand-labelled syllable files: each `.silb` line holds a time and a
syllable. The times are syllable *onsets* (the first mark sits in the stop closure before speech,
and the final "." marks the start of the trailing silence; the distribution's README calls them
end times, but the audio energy contradicts that: `tests/test_corpora.py` checks it). Syllables are
grouped into the words of the sentence by a monotonic alignment that minimises the edit distance
between each word and the concatenation of its syllables, so stutters ("ge gera de"), syllabic
nasals ("stehen hn") and breath marks "(" are handled; a file whose syllables do not fit its
sentence is reported, not guessed.
"""

import glob
import os

import numpy as np

from keras_ser.corpora.manifest import SkipCollector, make_manifest

EMOTION_CODES = {
    "W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral",
}
MALE_SPEAKERS = {"03", "10", "11", "12", "15"}
FEMALE_SPEAKERS = {"08", "09", "13", "14", "16"}

SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Blatt Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
"""The ten Emo-DB sentences. a05 is spoken with "Blatt" (the syllable files confirm it), although
the corpus documentation lists "Stück"."""

_PAUSES = {"(", ")", ".", ",", "<p>", "#"}


def sentence_words(text):
    """Words of a sentence, lower-cased, punctuation stripped."""
    return [w.strip(".,?!;:").lower() for w in text.split() if w.strip(".,?!;:")]


def _edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def read_silb(path):
    """`[(onset_s, syllable), ...]` from a `.silb` file (Latin-1)."""
    out = []
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                out.append((float(parts[0]), parts[1]))
            elif len(parts) == 1:
                out.append((float(parts[0]), ""))
    return out


def syllables_to_words(syllables, words, max_cost=0.5):
    """Group syllable onsets into word timings.

    Args:
        syllables: list of `(onset_s, syllable)`; "(" and "." are pauses, "." ends the utterance.
        words: list of lower-case words of the sentence.
        max_cost: float. Largest mean normalised edit distance accepted.

    Returns:
        list of `(word, start_s, end_s)`.

    Raises:
        ValueError when the syllables do not fit the words.
    """
    onsets = [t for t, _ in syllables]
    ends = onsets[1:] + [None]
    units = [(i, s.lower()) for i, (_, s) in enumerate(syllables) if s and s not in _PAUSES]
    n, m = len(words), len(units)
    if m < n:
        raise ValueError(f"{m} syllables for {n} words")
    inf = float("inf")
    # cost[i][j]: best cost of assigning the first j syllables to the first i words.
    cost = np.full((n + 1, m + 1), inf)
    back = np.zeros((n + 1, m + 1), dtype=int)
    cost[0, 0] = 0.0
    max_syl = 6
    for i in range(1, n + 1):
        w = words[i - 1]
        for j in range(i, m - (n - i) + 1):
            for k in range(max(i - 1, j - max_syl), j):
                if cost[i - 1, k] == inf:
                    continue
                cat = "".join(s for _, s in units[k:j])
                c = cost[i - 1, k] + _edit_distance(cat, w) / max(len(w), 1)
                if c < cost[i, j]:
                    cost[i, j], back[i, j] = c, k
    if cost[n, m] == inf or cost[n, m] / n > max_cost:
        raise ValueError(f"syllables do not fit the sentence (mean edit cost {cost[n, m] / n:.2f})")
    bounds, j = [], m
    for i in range(n, 0, -1):
        k = back[i, j]
        bounds.append((k, j))
        j = k
    bounds.reverse()
    out = []
    for w, (k, j) in zip(words, bounds):
        first, last = units[k][0], units[j - 1][0]
        end = ends[last]
        if end is None:
            raise ValueError("the last syllable has no end mark")
        out.append((w, round(onsets[first], 6), round(end, 6)))
    return out


def read_recognition_rates(path):
    """`{file_stem: (recognised_pct, natural_pct)}` from `erkennung.txt` (decimal commas)."""
    rates = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4 and parts[1].endswith(".wav"):
                rates[parts[1][:-4]] = (float(parts[2].replace(",", ".")), float(parts[3].replace(",", ".")))
    return rates


def load(root, with_words=True):
    """Load Emo-DB as a manifest.

    Args:
        root: str. Folder holding `wav/` (and optionally `silb/`, `erkennung.txt`).
        with_words: bool. Derive word timings from `silb/` when present. Defaults to True.

    Returns:
        `LoadResult(manifest, skipped)`. Extra columns: `text_id`, `recognition`, `naturalness`.
    """
    wav_dir = os.path.join(root, "wav")
    if not os.path.isdir(wav_dir):
        raise FileNotFoundError(f"{root}: no wav/ folder; is this an Emo-DB root?")
    rates_path = os.path.join(root, "erkennung.txt")
    rates = read_recognition_rates(rates_path) if os.path.exists(rates_path) else {}
    skip = SkipCollector()
    rows = []
    for path in sorted(glob.glob(os.path.join(wav_dir, "*"))):
        stem, ext = os.path.splitext(os.path.basename(path))
        if ext.lower() != ".wav":
            skip(path, "not a .wav file")
            continue
        if len(stem) != 7 or stem[5] not in EMOTION_CODES or stem[2:5] not in SENTENCES:
            skip(path, "name does not match SSTTTEV (speaker, text id, emotion code, version)")
            continue
        spk, tid, emo = stem[:2], stem[2:5], stem[5]
        gender = "m" if spk in MALE_SPEAKERS else "f" if spk in FEMALE_SPEAKERS else None
        if gender is None:
            skip(path, f"unknown speaker {spk}")
            continue
        words = None
        silb = os.path.join(root, "silb", stem + ".silb")
        if with_words and os.path.exists(silb):
            try:
                words = syllables_to_words(read_silb(silb), sentence_words(SENTENCES[tid]))
            except ValueError as exc:
                skip(silb, f"word timings not derived: {exc}")
        rec, nat = rates.get(stem, (np.nan, np.nan))
        rows.append({
            "utterance_id": f"emodb_{stem}", "path": os.path.abspath(path), "corpus": "emodb",
            "speaker": f"emodb_{spk}", "gender": gender, "emotion": EMOTION_CODES[emo],
            "intensity": None, "text": SENTENCES[tid], "annotations": None, "words": words,
            "session": f"emodb_{spk}", "language": "de", "text_id": tid,
            "recognition": rec, "naturalness": nat,
        })
    return make_manifest(rows, skip)
