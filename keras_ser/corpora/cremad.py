"""CREMA-D (Cao et al., 2014).

Layout: `ROOT/AudioWAV/AAAA_SSS_EEE_LL.wav` (actor, sentence, emotion, level), optionally
`ROOT/VideoDemographics.csv` (ActorID, Sex, ...) for genders. Levels LO, MD, HI, XX (unspecified).
"""

import csv
import os
import re

from keras_ser.corpora._common import walk_audio
from keras_ser.corpora.manifest import SkipCollector, make_manifest

EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": None, "X": None}
SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
    "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


def _genders(root):
    path = os.path.join(root, "VideoDemographics.csv")
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        return {r["ActorID"]: {"Male": "m", "Female": "f"}.get(r.get("Sex")) for r in csv.DictReader(f)}


def load(root):
    """Load CREMA-D as a manifest."""
    skip = SkipCollector()
    genders = _genders(root)
    rows = []
    for path in walk_audio(root, skip):
        stem = os.path.splitext(os.path.basename(path))[0]
        m = _NAME.match(stem)
        if not m or m.group(2) not in SENTENCES or m.group(3) not in EMOTIONS or m.group(4) not in LEVELS:
            skip(path, "name does not match AAAA_SSS_EEE_LL.wav")
            continue
        actor, sent, emo, lvl = m.groups()
        rows.append({
            "utterance_id": f"cremad_{stem}", "path": os.path.abspath(path), "corpus": "cremad",
            "speaker": f"cremad_{actor}", "gender": genders.get(actor), "emotion": EMOTIONS[emo],
            "intensity": LEVELS[lvl], "text": SENTENCES[sent], "session": f"cremad_{actor}",
            "language": "en",
        })
    return make_manifest(rows, skip)
