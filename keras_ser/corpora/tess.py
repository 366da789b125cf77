"""TESS (Toronto Emotional Speech Set; Dupuis & Pichora-Fuller, 2010).

Layout: `ROOT/**/SPK_WORD_EMOTION.wav` with speakers OAF (older) and YAF (younger), both female;
emotions angry, disgust, fear, happy, neutral, ps (pleasant surprise), sad. The carrier phrase is
"Say the word WORD".
"""

import os
import re

from keras_ser.corpora._common import walk_audio
from keras_ser.corpora.manifest import SkipCollector, make_manifest

EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
            "neutral": "neutral", "ps": "surprise", "sad": "sad"}
_NAME = re.compile(r"^(OAF|YAF)_([A-Za-z]+)_([A-Za-z]+)$", re.IGNORECASE)


def load(root):
    """Load TESS as a manifest."""
    skip = SkipCollector()
    rows = []
    for path in walk_audio(root, skip):
        stem = os.path.splitext(os.path.basename(path))[0]
        m = _NAME.match(stem)
        if not m or m.group(3).lower() not in EMOTIONS:
            skip(path, "name does not match SPK_WORD_EMOTION.wav")
            continue
        spk, word, emo = m.group(1).upper(), m.group(2).lower(), m.group(3).lower()
        rows.append({
            "utterance_id": f"tess_{spk}_{word}_{emo}", "path": os.path.abspath(path),
            "corpus": "tess", "speaker": f"tess_{spk}", "gender": "f", "emotion": EMOTIONS[emo],
            "text": f"Say the word {word}", "session": f"tess_{spk}", "language": "en",
        })
    return make_manifest(rows, skip)
