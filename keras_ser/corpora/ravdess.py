"""RAVDESS speech (Livingstone & Russo, 2018), audio only, WAV or FLAC.

Layout: `ROOT/Actor_AA/MM-VV-EE-II-SS-RR-AA.{wav,flac}`: modality MM (03 audio-only), vocal
channel VV (01 speech, 02 song), emotion EE, intensity II (01 normal, 02 strong), statement SS,
repetition RR, actor AA (odd male, even female). Only audio-only speech files are loaded; song
and video files are reported as skipped.
"""

import os

from keras_ser.corpora._common import walk_audio
from keras_ser.corpora.manifest import SkipCollector, make_manifest

EMOTION_CODES = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
    "07": "disgust", "08": "surprise",
}
INTENSITY_CODES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def load(root):
    """Load RAVDESS speech as a manifest. Extra columns: `statement`, `repetition`."""
    skip = SkipCollector()
    rows = []
    for path in walk_audio(root, skip):
        stem = os.path.splitext(os.path.basename(path))[0]
        parts = stem.split("-")
        if len(parts) != 7 or not all(p.isdigit() and len(p) == 2 for p in parts):
            skip(path, "name does not match MM-VV-EE-II-SS-RR-AA")
            continue
        mod, voc, emo, inten, stmt, rep, actor = parts
        if mod != "03" or voc != "01":
            skip(path, f"not audio-only speech (modality {mod}, vocal channel {voc})")
            continue
        if emo not in EMOTION_CODES or inten not in INTENSITY_CODES or stmt not in STATEMENTS:
            skip(path, "unknown emotion, intensity or statement code")
            continue
        if emo == "01" and inten == "02":
            skip(path, "neutral has no strong intensity in RAVDESS")
            continue
        rows.append({
            "utterance_id": f"ravdess_{stem}", "path": os.path.abspath(path), "corpus": "ravdess",
            "speaker": f"ravdess_{actor}", "gender": "m" if int(actor) % 2 else "f",
            "emotion": EMOTION_CODES[emo], "intensity": INTENSITY_CODES[inten],
            "text": STATEMENTS[stmt], "annotations": None, "words": None,
            "session": f"ravdess_{actor}", "language": "en", "statement": stmt, "repetition": rep,
        })
    return make_manifest(rows, skip)
