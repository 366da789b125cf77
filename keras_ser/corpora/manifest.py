"""The one manifest schema every corpus loader returns (a pandas DataFrame).

Columns (`MANIFEST_COLUMNS`):
    utterance_id: str, unique within the manifest.
    path: str, absolute path of the audio file.
    corpus: str, e.g. "emodb".
    speaker: str, unique across corpora (prefixed with the corpus name).
    gender: "m", "f" or None.
    emotion: canonical emotion name (see `EMOTIONS`), or None when unlabelled.
    intensity: "normal", "strong", a corpus-specific level, or None.
    strength: float emotion strength in [0, 1] where known (synthetic corpus), else NaN.
    text: str transcript, or None.
    annotations: list of per-annotator label lists (`[["neutral"], ["sad", "neutral"], ...]`,
        canonical names), or None where the corpus has only one label.
    words: list of `(word, start_s, end_s)` tuples where known, else None.
    duration: float seconds. `make_manifest` reads it from the audio file's header where a loader
        does not set it; a file whose header cannot be read is skipped with the reason.
    session: str recording session (IEMOCAP), or the speaker where the corpus has none.
    language: str ISO code.
    extra columns are allowed (e.g. `emotion_segments`, `improvised`, `statement`).

Loaders return a `LoadResult(manifest, skipped)`: `skipped` is a DataFrame of the files found
that did not fit the layout, with a reason each. Nothing is dropped silently.
"""

import collections
import hashlib
import json
import os

import numpy as np
import pandas as pd

from keras_ser.errors import CorpusError
from keras_ser.utils import file_digests, write_text

MANIFEST_COLUMNS = [
    "utterance_id", "path", "corpus", "speaker", "gender", "emotion", "intensity", "strength",
    "text", "annotations", "words", "duration", "session", "language",
]

EMOTIONS = (
    "neutral", "happy", "sad", "angry", "surprise", "fear", "disgust", "calm", "boredom",
    "excited", "frustrated", "other",
)
"""Canonical emotion names. Corpus codes map onto these."""


class LoadResult(collections.namedtuple("LoadResult", ["manifest", "skipped"])):
    """What a corpus loader returns: the manifest and the files it could not use (with reasons)."""

    def summary(self):
        m, s = self.manifest, self.skipped
        lines = [f"{len(m)} utterances, {m['speaker'].nunique() if len(m) else 0} speakers"]
        if len(s):
            lines.append(f"{len(s)} files skipped:")
            lines += self.skipped_lines()
        return "\n".join(lines)

    def skipped_lines(self, limit=10):
        """One line per reason for skipping (the first `limit` reasons): how many files, the
        reason, the first such file."""
        groups = list(self.skipped.groupby("reason", sort=False))
        lines = [f"  {len(g)} x {reason}: {g['path'].iloc[0]}" + (" ..." if len(g) > 1 else "")
                 for reason, g in groups[:limit]]
        if len(groups) > limit:
            lines.append(f"  ... {len(groups) - limit} more reasons")
        return lines


class SkipCollector:
    """Collects (path, reason) rows for files that do not fit a corpus layout."""

    def __init__(self):
        self.rows = []

    def __call__(self, path, reason):
        self.rows.append({"path": str(path), "reason": reason})

    def frame(self):
        return pd.DataFrame(self.rows, columns=["path", "reason"])


def _fill_durations(rows, skip):
    """Rows with their `duration` read from the audio header where missing; unreadable files go
    to `skip` (a `SkipCollector`) instead."""
    import soundfile

    kept = []
    for row in rows:
        duration = row.get("duration")
        if duration is None or not np.isfinite(duration):
            if not os.path.isfile(row["path"]):
                skip(row["path"], "file does not exist" if not os.path.exists(row["path"]) else "not a file")
                continue
            try:
                row = dict(row, duration=float(soundfile.info(row["path"]).duration))
            except (RuntimeError, OSError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
                skip(row["path"], f"unreadable audio header ({str(exc).strip() or type(exc).__name__})")
                continue
        kept.append(row)
    return kept


def make_manifest(rows, skipped=None):
    """Build a validated manifest DataFrame from a list of dicts (missing columns filled).

    A missing `duration` is read from the audio file's header; files whose header cannot be read
    are moved to `skipped` (a `SkipCollector`, the loader's) with the reason.
    """
    skip = skipped if skipped is not None else SkipCollector()
    df = _all_columns(pd.DataFrame(_fill_durations(list(rows), skip)))
    if len(df):
        df = df.sort_values("utterance_id", kind="stable").reset_index(drop=True)
    validate_manifest(df)
    return LoadResult(df, skip.frame())


def _all_columns(df):
    """`df` with every manifest column (missing ones None, NaN for the numeric), in schema order
    and then the extra columns, text columns normalised."""
    for col in MANIFEST_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan if col in ("strength", "duration") else None
    extra = [c for c in df.columns if c not in MANIFEST_COLUMNS]
    return _normalize(df[MANIFEST_COLUMNS + extra].copy())


_TEXT_COLUMNS = ("utterance_id", "path", "corpus", "speaker", "gender", "emotion", "intensity",
                 "text", "session", "language")


def _normalize(df):
    """Object dtype with None for missing values in text columns (pandas 3 would use NaN)."""
    for col in _TEXT_COLUMNS:
        if col in df.columns:
            s = df[col].astype(object)
            df[col] = s.where(s.notna(), None)
    return df


def validate_manifest(df, source="manifest"):
    """Check the schema; raise `CorpusError` naming the problem."""
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise CorpusError(f"{source}: missing columns {missing}")
    dup = df["utterance_id"][df["utterance_id"].duplicated()]
    if len(dup):
        raise CorpusError(f"{source}: duplicate utterance_id {dup.iloc[0]!r}")
    bad = set(df["emotion"].dropna()) - set(EMOTIONS)
    if bad:
        raise CorpusError(f"{source}: unknown emotion names {sorted(bad)}; known: {EMOTIONS}")
    for ann in df["annotations"]:
        if ann is None or (isinstance(ann, float) and np.isnan(ann)):
            continue
        if not all(isinstance(a, (list, tuple)) for a in ann):
            raise CorpusError(f"{source}: annotations must be a list of per-annotator label lists")
    return df


def emotion_counts(df):
    """Utterances per emotion, sorted by name."""
    return df["emotion"].value_counts().sort_index().to_dict()


# ---------------------------------------------------------------------------------------------
# Persistence: JSON lines keep the nested columns (annotations, words) exact.
# ---------------------------------------------------------------------------------------------
def _jsonable(v):
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, (np.floating,)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def content_hash(df):
    """SHA-256 of everything a manifest says about its utterances (every column of every row)
    and of each audio file's bytes (`keras_ser.utils.file_digests`, memoised by size and
    modification time): a relabelled utterance, a repaired, replaced or deleted file all change
    it; a corpus copied with new file times (a restored backup, a fresh container) does not."""
    h = hashlib.sha256(",".join(map(str, df.columns)).encode())
    records = df.to_dict(orient="records")
    for rec, digest in zip(records, file_digests([rec["path"] for rec in records])):
        h.update(json.dumps({k: _jsonable(v) for k, v in rec.items()}, sort_keys=True, default=str).encode())
        h.update(f"|{digest or 'missing'}\n".encode())
    return h.hexdigest()


def save_manifest(df, path):
    """Write a manifest as JSON lines, atomically."""
    write_text("".join(json.dumps({k: _jsonable(v) for k, v in rec.items()}, ensure_ascii=False) + "\n"
                       for rec in df.to_dict(orient="records")), path)


REQUIRED_COLUMNS = ("path", "speaker")
"""What a hand-written manifest must give on every line; `read_manifest` fills the rest."""


def read_manifest(path):
    """Read a manifest written by `save_manifest` or by hand (JSON lines); relative paths resolve
    against its folder. A missing `duration` is read from the audio header; an unreadable file is
    an error that names the manifest line and the file.

    Only `path` and `speaker` are required on each line (`emotion` too, for training). Missing
    columns are filled: `utterance_id` from the file name, `corpus` from the manifest's file name,
    `session` from the speaker, the others with None (NaN for `strength` and `duration`)."""
    rows = []
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise CorpusError(f"{path}:{i}: expected a JSON object per line, got {type(rec).__name__}")
            missing = [c for c in REQUIRED_COLUMNS if rec.get(c) in (None, "")]
            if missing:
                raise CorpusError(f"{path}:{i}: no {' or '.join(missing)} (every line needs {', '.join(REQUIRED_COLUMNS)})")
            for col, unit in (("duration", "a number of seconds"), ("strength", "a number in [0, 1]")):
                v = rec.get(col)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise CorpusError(f"{path}:{i}: {col} must be {unit} or null, got {v!r}")
            for col in ("path", "speaker", "emotion", "utterance_id", "text"):
                v = rec.get(col)
                if v is not None and not isinstance(v, str):
                    raise CorpusError(f"{path}:{i}: {col} must be a string, got {v!r}")
            if rec.get("words") is not None:
                rec["words"] = [tuple(w) for w in rec["words"]]
            if not os.path.isabs(rec["path"]):
                rec["path"] = os.path.join(base, rec["path"])
            skip = SkipCollector()
            filled = _fill_durations([rec], skip)
            if not filled:
                raise CorpusError(f"{path}:{i}: {rec['path']}: {skip.rows[0]['reason']}, and no duration given")
            rows.append(filled[0])
    if not rows:
        raise CorpusError(f"{path}: no utterances")
    df = pd.DataFrame(rows)
    ids = df["utterance_id"] if "utterance_id" in df.columns else [None] * len(df)
    df["utterance_id"] = [u if isinstance(u, str) and u else os.path.splitext(os.path.basename(p))[0]
                          for u, p in zip(ids, df["path"])]
    if "corpus" not in df.columns:
        df["corpus"] = os.path.splitext(os.path.basename(str(path)))[0]
    if "session" not in df.columns:
        df["session"] = df["speaker"]
    df = _all_columns(df)
    for col in ("strength", "duration"):
        df[col] = df[col].astype(float)
    return validate_manifest(df, source=str(path))


def load(root):
    """`load_corpus("manifest", path)`: a manifest file of the user's own corpus (`read_manifest`),
    so that `data.corpus: manifest` with `data.root: PATH.jsonl` trains on it."""
    if not os.path.isfile(root):
        raise CorpusError(f"{root}: no such manifest file (data.corpus: manifest wants data.root to be a .jsonl file)")
    return LoadResult(read_manifest(root), SkipCollector().frame())
