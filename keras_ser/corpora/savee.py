"""SAVEE (Surrey Audio-Visual Expressed Emotion; Haq & Jackson, 2009).

Layout: `ROOT/[AudioData/]SPK/EEnn.wav` with speakers DC, JE, JK, KL (all male) and emotion
prefixes a (anger), d (disgust), f (fear), h (happiness), n (neutral), sa (sadness),
su (surprise). Flat layouts named `SPK_EEnn.wav` are accepted too.
"""

import os
import re

from keras_ser.corpora._common import walk_audio
from keras_ser.corpora.manifest import SkipCollector, make_manifest

SPEAKERS = ("DC", "JE", "JK", "KL")
EMOTION_CODES = {
    "a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprise",
}
_NAME = re.compile(r"^(?:(DC|JE|JK|KL)_)?(sa|su|a|d|f|h|n)(\d{2})$")


def load(root):
    """Load SAVEE as a manifest."""
    skip = SkipCollector()
    rows = []
    for path in walk_audio(root, skip):
        stem = os.path.splitext(os.path.basename(path))[0]
        m = _NAME.match(stem)
        parent = os.path.basename(os.path.dirname(path))
        spk = (m.group(1) if m and m.group(1) else parent) if m else None
        if not m or spk not in SPEAKERS:
            skip(path, "name does not match SPK/EEnn.wav (SPK in DC, JE, JK, KL)")
            continue
        code, num = m.group(2), m.group(3)
        rows.append({
            "utterance_id": f"savee_{spk}_{code}{num}", "path": os.path.abspath(path),
            "corpus": "savee", "speaker": f"savee_{spk}", "gender": "m",
            "emotion": EMOTION_CODES[code], "text": None, "session": f"savee_{spk}", "language": "en",
        })
    return make_manifest(rows, skip)
