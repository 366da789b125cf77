"""ESD (Emotional Speech Dataset; Zhou et al., 2021), English and Mandarin.

Layout: `ROOT/SSSS/Emotion/[train|evaluation|test/]SSSS_NNNNNN.wav` with speakers 0001-0010
(Mandarin) and 0011-0020 (English), emotions Angry, Happy, Neutral, Sad, Surprise, and a
transcript `ROOT/SSSS/SSSS.txt` of tab-separated `id, text, emotion` lines (UTF-8 or UTF-16).
The split subfolder, when present, is kept in the `split` column.
"""

import os
import re

from keras_ser.corpora._common import walk_audio
from keras_ser.corpora.manifest import SkipCollector, make_manifest

EMOTIONS = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
# Speaker genders as documented with the corpus.
GENDERS = {
    "0001": "f", "0002": "f", "0003": "f", "0004": "m", "0005": "m", "0006": "m", "0007": "f",
    "0008": "m", "0009": "f", "0010": "m", "0011": "m", "0012": "m", "0013": "m", "0014": "m",
    "0015": "f", "0016": "f", "0017": "f", "0018": "f", "0019": "f", "0020": "m",
}
_NAME = re.compile(r"^(\d{4})_(\d{6})$")


def _read_transcript(path):
    for enc in ("utf-8-sig", "utf-16"):
        try:
            with open(path, encoding=enc) as f:
                lines = f.read().splitlines()
            break
        except UnicodeError:
            continue
    else:
        return {}
    out = {}
    for line in lines:
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) >= 2 and _NAME.match(parts[0]):
            out[parts[0]] = parts[1]
    return out


def load(root, languages=("en", "zh")):
    """Load ESD as a manifest. `languages` selects English ("en") and/or Mandarin ("zh")."""
    skip = SkipCollector()
    rows = []
    transcripts = {}
    for path in walk_audio(root, skip):
        stem = os.path.splitext(os.path.basename(path))[0]
        m = _NAME.match(stem)
        rel = os.path.relpath(path, root).split(os.sep)
        if not m or len(rel) < 3 or rel[0] != m.group(1):
            skip(path, "does not match SSSS/Emotion/[split/]SSSS_NNNNNN.wav")
            continue
        spk = m.group(1)
        emotion = EMOTIONS.get(rel[1].lower())
        if spk not in GENDERS or emotion is None:
            skip(path, f"unknown speaker {spk} or emotion folder {rel[1]!r}")
            continue
        lang = "zh" if int(spk) <= 10 else "en"
        if lang not in languages:
            continue
        if spk not in transcripts:
            tpath = os.path.join(root, spk, f"{spk}.txt")
            transcripts[spk] = _read_transcript(tpath) if os.path.exists(tpath) else {}
        split = rel[2] if len(rel) == 4 else None
        rows.append({
            "utterance_id": f"esd_{stem}", "path": os.path.abspath(path), "corpus": "esd",
            "speaker": f"esd_{spk}", "gender": GENDERS[spk], "emotion": emotion,
            "text": transcripts[spk].get(stem), "session": f"esd_{spk}", "language": lang,
            "split": split,
        })
    return make_manifest(rows, skip)
