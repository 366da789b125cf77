"""openSMILE functionals (IS09, 384-d by default), extracted in worker processes.

openSMILE and TensorFlow in one process crash (`malloc(): corrupted ...`) when TensorFlow was
imported first. So extraction always runs in `spawn`-context worker processes that import only
NumPy, soundfile, soxr and opensmile, never TensorFlow; this module itself imports none of them
at import time. The workers also parallelise the extraction. Results are cached in a `.npz` file
keyed by the file paths and the feature set.
"""

import hashlib
import json
import os

import numpy as np

from keras_ser.audio.io import load_audio
from keras_ser.errors import AudioError
from keras_ser.utils import atomic_path, die_with_parent, file_digests, spawn_pool

_SMILE = None


_NON_FINITE = "error"


class ExtractionError(ValueError):
    """openSMILE gave functionals for none of the files. `errors`: `{path: reason}` for each."""

    def __init__(self, errors):
        self.errors = errors
        path, why = next(iter(errors.items()), ("-", "no files given"))
        super().__init__(f"openSMILE could not process any of {len(errors)} files (first: {path}: {why})")


def _init_worker(feature_set, non_finite="error"):
    global _SMILE, _NON_FINITE
    import sys

    die_with_parent()
    _NON_FINITE = non_finite
    if "tensorflow" in sys.modules:  # pragma: no cover - a guard (`spawn_pool` keeps the user's main module out)
        raise RuntimeError("openSMILE worker has TensorFlow loaded; refusing to run")
    import opensmile

    _SMILE = opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, feature_set),
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def _extract_one(path):

    try:
        wav = load_audio(path)
    except AudioError as exc:
        return None, exc.problem, None
    df = _SMILE.process_signal(wav, 16000)
    values = df.to_numpy(dtype=np.float64)[0]
    if not np.all(np.isfinite(values)):
        if _NON_FINITE != "zero":
            return None, "openSMILE returned non-finite functionals", None
        values = np.where(np.isfinite(values), values, 0.0)
    return values, None, list(df.columns)


def _worker_has_tensorflow():
    import sys

    return "tensorflow" in sys.modules


def extract_functionals(paths, feature_set="IS09", num_workers=2, cache_path=None, non_finite="error"):
    """openSMILE functionals of each file, computed in TensorFlow-free worker processes.

    Args:
        paths: list of audio file paths.
        feature_set: str. An `opensmile.FeatureSet` name. Defaults to "IS09" (384 functionals).
        num_workers: int. Worker processes (at least 1: extraction never runs in this process).
        cache_path: str or None. A `.npz` cache; reused when it holds the same paths, set and
            handling, and every file's bytes are unchanged (`keras_ser.utils.file_digests`).
        non_finite: "error" (a file whose functionals hold NaN or infinity fails) or "zero"
            (those values become 0, as audEERING's examples do for ComParE's few undefined
            functionals on very short or flat segments).

    Returns:
        `(features, names, errors)`: float64 `(len(paths), dim)` with NaN rows for files that
        failed, the functional names, and `{path: reason}` for the failures.

    Raises:
        ExtractionError: no file gave functionals (its `errors` names each file and why).
    """
    paths = [os.fspath(p) for p in paths]
    key = hashlib.sha256(json.dumps([feature_set, non_finite, paths, file_digests(paths)]).encode()).hexdigest()
    if cache_path and os.path.exists(cache_path):
        with np.load(cache_path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return z["features"], list(z["names"]), json.loads(str(z["errors"]))
    with spawn_pool(num_workers, _init_worker, (feature_set, non_finite)) as pool:
        results = list(pool.map(_extract_one, paths, chunksize=max(1, len(paths) // (8 * max(1, num_workers)))))
    errors = {paths[i]: err for i, (values, err, _) in enumerate(results) if values is None}
    names = next((r[2] for r in results if r[2] is not None), None)
    if names is None:
        raise ExtractionError(errors)
    feats = np.full((len(paths), len(names)), np.nan)
    for i, (values, _, _) in enumerate(results):
        if values is not None:
            feats[i] = values
    if cache_path:
        os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
        with atomic_path(cache_path, keep_suffix=True) as tmp:
            np.savez(tmp, key=key, features=feats, names=np.array(names), errors=json.dumps(errors))
    return feats, names, errors


def workers_import_tensorflow(num_workers=1):
    """True when a worker of this module would have TensorFlow loaded (for tests)."""
    with spawn_pool(num_workers, _init_worker, ("IS09",)) as pool:
        return pool.submit(_worker_has_tensorflow).result()
