"""IEMOCAP (Busso et al., 2008): every annotator's categorical labels, transcripts, alignments.

Layout (`IEMOCAP_full_release`):
    SessionN/sentences/wav/DIALOG/UTT.wav
    SessionN/dialog/EmoEvaluation/DIALOG.txt      consensus + per-annotator labels
    SessionN/dialog/transcriptions/DIALOG.txt     `UTT [start-end]: text`
    SessionN/sentences/ForcedAlignment/DIALOG/UTT.wdseg   word segments in 10 ms frames

`emotion` is the consensus label (None for "xxx", no majority); `annotations` holds each
evaluator's labels (an evaluator may give several), in canonical names. The actors' own
self-assessments (`C-F1:`/`C-M1:` lines) are left out unless `include_self_assessment=True`.
"""

import glob
import os
import re

from keras_ser.corpora.manifest import SkipCollector, make_manifest

CONSENSUS = {
    "neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry", "sur": "surprise", "fea": "fear",
    "dis": "disgust", "fru": "frustrated", "exc": "excited", "oth": "other", "xxx": None,
}
ANNOTATOR_LABELS = {
    "neutral": "neutral", "happiness": "happy", "sadness": "sad", "anger": "angry",
    "surprise": "surprise", "fear": "fear", "disgust": "disgust", "frustration": "frustrated",
    "excited": "excited", "other": "other",
}
_HEADER = re.compile(r"^\[(\d+\.\d+)\s*-\s*(\d+\.\d+)\]\s+(\S+)\s+(\w+)\s+\[")
_CAT = re.compile(r"^C-([A-Z]+\d*):\s*(.*?)\s*\(")
_TRANS = re.compile(r"^(Ses\d+[FM]_\S+_[FM]\d+\w*)\s+\[[\d.]+-[\d.]+\]:\s*(.*)$")
_NOISE = re.compile(r"^(<.*>|\+\+.*\+\+|\[.*\])$")


def read_emo_evaluation(path, include_self_assessment=False):
    """`{utt: {"emotion", "start", "end", "annotations"}}` from an EmoEvaluation file."""
    out, cur = {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = _HEADER.match(line)
            if m:
                start, end, utt, code = m.groups()
                cur = {"emotion": CONSENSUS.get(code, "other"), "start": float(start),
                       "end": float(end), "annotations": [], "code": code}
                out[utt] = cur
                continue
            m = _CAT.match(line)
            if m and cur is not None:
                who, labels = m.groups()
                if not include_self_assessment and not who.startswith("E"):
                    continue
                names = []
                for lab in labels.split(";"):
                    lab = lab.strip().split(":")[0].strip().lower()
                    if lab:
                        names.append(ANNOTATOR_LABELS.get(lab, "other"))
                if names:
                    cur["annotations"].append(names)
    return out


def read_transcriptions(path):
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _TRANS.match(line.strip())
            if m:
                out[m.group(1)] = m.group(2).strip()
    return out


def read_wdseg(path, frame_shift=0.01):
    """Word timings `[(word, start_s, end_s)]` from a `.wdseg` file; silences and noises dropped."""
    words = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 4 or not parts[0].isdigit():
                continue
            s, e, word = int(parts[0]), int(parts[1]), parts[3]
            if _NOISE.match(word):
                continue
            word = re.sub(r"\(\d+\)$", "", word).lower()
            words.append((word, round(s * frame_shift, 4), round((e + 1) * frame_shift, 4)))
    return words


def load(root, include_self_assessment=False, with_words=True):
    """Load IEMOCAP as a manifest.

    Extra columns: `dialog`, `improvised` (bool), `start`, `end` (seconds within the dialog).
    """
    sessions = sorted(glob.glob(os.path.join(root, "Session*")))
    if not sessions:
        raise FileNotFoundError(f"{root}: no Session*/ folders; is this an IEMOCAP_full_release root?")
    skip = SkipCollector()
    rows = []
    for sdir in sessions:
        session = "Ses%02d" % int(re.sub(r"\D", "", os.path.basename(sdir)) or 0)
        evals, trans = {}, {}
        for p in sorted(glob.glob(os.path.join(sdir, "dialog", "EmoEvaluation", "*.txt"))):
            evals.update(read_emo_evaluation(p, include_self_assessment))
        for p in sorted(glob.glob(os.path.join(sdir, "dialog", "transcriptions", "*.txt"))):
            trans.update(read_transcriptions(p))
        for path in sorted(glob.glob(os.path.join(sdir, "sentences", "wav", "*", "*.wav"))):
            utt = os.path.splitext(os.path.basename(path))[0]
            dialog = os.path.basename(os.path.dirname(path))
            if utt not in evals:
                skip(path, "no EmoEvaluation entry")
                continue
            ev = evals[utt]
            spk_letter = utt.rsplit("_", 1)[-1][:1]
            if spk_letter not in "FM":
                skip(path, "speaker letter is not F or M")
                continue
            words = None
            wd = os.path.join(sdir, "sentences", "ForcedAlignment", dialog, utt + ".wdseg")
            if with_words and os.path.exists(wd):
                words = read_wdseg(wd) or None
            rows.append({
                "utterance_id": f"iemocap_{utt}", "path": os.path.abspath(path), "corpus": "iemocap",
                "speaker": f"iemocap_{session}{spk_letter}", "gender": spk_letter.lower(),
                "emotion": ev["emotion"], "text": trans.get(utt), "annotations": ev["annotations"] or None,
                "words": words, "duration": ev["end"] - ev["start"], "session": f"iemocap_{session}",
                "language": "en", "dialog": dialog, "improvised": "_impro" in dialog,
                "start": ev["start"], "end": ev["end"],
            })
    return make_manifest(rows, skip)
