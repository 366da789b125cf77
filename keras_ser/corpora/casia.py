"""CASIA Chinese emotional speech corpus (Institute of Automation, Chinese Academy of Sciences).

Layout: `ROOT/SPEAKER/EMOTION/NNN.wav` with speakers liuchanhg, wangzhe, zhaoquanyin,
ZhaoZuoxiang and emotions angry, fear, happy, neutral, sad, surprise.
"""

import os

from keras_ser.corpora._common import walk_audio
from keras_ser.corpora.manifest import SkipCollector, make_manifest

GENDERS = {"liuchanhg": "f", "wangzhe": "m", "zhaoquanyin": "f", "zhaozuoxiang": "m"}
EMOTIONS = {"angry": "angry", "fear": "fear", "happy": "happy", "neutral": "neutral", "sad": "sad",
            "surprise": "surprise"}


def load(root):
    """Load CASIA as a manifest."""
    skip = SkipCollector()
    rows = []
    for path in walk_audio(root, skip):
        rel = os.path.relpath(path, root).split(os.sep)
        stem = os.path.splitext(rel[-1])[0]
        if len(rel) < 3:
            skip(path, "does not match SPEAKER/EMOTION/NNN.wav")
            continue
        spk, emo = rel[-3], rel[-2].lower()
        if spk.lower() not in GENDERS or emo not in EMOTIONS or not stem.isdigit():
            skip(path, f"unknown speaker {spk!r}, emotion {rel[-2]!r} or utterance number {stem!r}")
            continue
        rows.append({
            "utterance_id": f"casia_{spk.lower()}_{emo}_{stem}", "path": os.path.abspath(path),
            "corpus": "casia", "speaker": f"casia_{spk.lower()}", "gender": GENDERS[spk.lower()],
            "emotion": EMOTIONS[emo], "session": f"casia_{spk.lower()}", "language": "zh",
            "sentence": stem,
        })
    return make_manifest(rows, skip)
