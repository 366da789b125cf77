"""openSMILE functionals (IS09, 384-d by default), extracted in worker processes.

openSMILE and TensorFlow in one process crash (`malloc(): corrupted ...`) when TensorFlow was
imported first. So extraction always runs in `spawn`-context worker processes that import only
NumPy, soundfile, soxr and opensmile, never TensorFlow; this module itself imports none of them
at import time. The workers also parallelise the extraction. Results are cached in a `.npz` file
keyed by the file paths, the feature set and each file's bytes; they hold openSMILE's values as
it gave them, so callers that treat undefined values differently share one extraction.
"""

import hashlib
import json
import os

import numpy as np

from keras_ser.audio.io import load_audio
from keras_ser.errors import AudioError
from keras_ser.utils import atomic_path, die_with_parent, file_digests, spawn_pool

_SMILE = None


class ExtractionError(ValueError):
    """openSMILE gave functionals for none of the files. `errors`: `{path: reason}` for each."""

    def __init__(self, errors):
        self.errors = errors
        path, why = next(iter(errors.items()), ("-", "no files given"))
        super().__init__(f"openSMILE could not process any of {len(errors)} files (first: {path}: {why})")


def _init_worker(feature_set):
    global _SMILE
    import sys

    die_with_parent()
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
    return df.to_numpy(dtype=np.float64)[0], None, list(df.columns)


def _worker_has_tensorflow():
    import sys

    return "tensorflow" in sys.modules


def extract_functionals(paths, feature_set="IS09", num_workers=2, cache_path=None, non_finite="error"):
    """openSMILE functionals of each file, computed in TensorFlow-free worker processes.

    Args:
        paths: list of audio file paths.
        feature_set: str. An `opensmile.FeatureSet` name. Defaults to "IS09" (384 functionals).
        num_workers: int. Worker processes (at least 1: extraction never runs in this process).
        cache_path: str or None. A `.npz` cache of openSMILE's values before `non_finite` is
            applied; reused when it holds the same paths and set, and every file's bytes are
            unchanged (`keras_ser.utils.file_digests`), whatever `non_finite` asked for.
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
    if non_finite not in ("error", "zero"):
        raise ValueError(f"non_finite must be 'error' or 'zero', not {non_finite!r}")
    key = hashlib.sha256(json.dumps(["raw", feature_set, paths, file_digests(paths)]).encode()).hexdigest()
    cached = None
    if cache_path and os.path.exists(cache_path):
        with np.load(cache_path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                cached = z["features"], list(z["names"]), json.loads(str(z["errors"]))
    if cached is None:
        cached = _extract(paths, feature_set, num_workers)
        if cache_path:
            feats, names, errors = cached
            os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
            with atomic_path(cache_path, keep_suffix=True) as tmp:
                np.savez(tmp, key=key, features=feats, names=np.array(names), errors=json.dumps(errors))
    return handle_non_finite(*cached, paths, non_finite)


def _extract(paths, feature_set, num_workers):
    """`(features, names, errors)` as openSMILE gave them (undefined values kept)."""
    with spawn_pool(num_workers, _init_worker, (feature_set,)) as pool:
        results = list(pool.map(_extract_one, paths, chunksize=max(1, len(paths) // (8 * max(1, num_workers)))))
    errors = {paths[i]: err for i, (values, err, _) in enumerate(results) if values is None}
    names = next((r[2] for r in results if r[2] is not None), None)
    if names is None:
        raise ExtractionError(errors)
    feats = np.full((len(paths), len(names)), np.nan)
    for i, (values, _, _) in enumerate(results):
        if values is not None:
            feats[i] = values
    return feats, names, errors


def handle_non_finite(feats, names, errors, paths, non_finite):
    """`extract_functionals`' result from openSMILE's values: with `non_finite="error"` a file
    whose functionals hold NaN or infinity becomes a failure (a NaN row named in `errors`), with
    `"zero"` those values become 0. Raises ExtractionError when no file is left."""
    feats, errors = feats.copy(), dict(errors)
    bad = [i for i in np.flatnonzero(~np.isfinite(feats).all(1)) if paths[i] not in errors]
    if non_finite == "zero":
        feats[bad] = np.where(np.isfinite(feats[bad]), feats[bad], 0.0)
    else:
        feats[bad] = np.nan
        errors.update({paths[i]: "openSMILE returned non-finite functionals" for i in bad})
        errors = {p: errors[p] for p in paths if p in errors}  # in the files' order
        if len(errors) == len(paths):
            raise ExtractionError(errors)
    return feats, names, errors


def workers_import_tensorflow(num_workers=1):
    """True when a worker of this module would have TensorFlow loaded (for tests)."""
    with spawn_pool(num_workers, _init_worker, ("IS09",)) as pool:
        return pool.submit(_worker_has_tensorflow).result()
