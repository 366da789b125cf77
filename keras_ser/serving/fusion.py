"""Late fusion of two exports as one SavedModel: the hybrid rows of docs/results.md, deployable.

`experiments/late_fusion.py` scores `weight * p_a + (1 - weight) * p_b` from two runs'
predictions; `export_fusion` builds the same model from the two runs' exports (each run exports
its first fold's model), so what a table calls "cnn_pool + reference" is one folder that TF
Serving loads and `keras_ser-predict` runs:

    serving_default   the union of the two exports' `serving_default` inputs (a network's
                      `waveform` + `num_samples`, the reference's `features`, words, speaker
                      statistics; an input both take is given once and must have one spec)
                      → `emotion`: the fused class probabilities; `emotion_a`, `emotion_b`:
                      each part's (after its temperature); `status`: a's code where a did not
                      score the utterance, else 100 × b's code (`status_codes` in keras_ser.json);
                      and every other output of each part under its own name (StrengthNet's
                      `strength`, a network's `num_frames`), `<name>_a` / `<name>_b` where both
                      have it

Each part's probabilities can be softened first, `p ** (1 / T)` renormalised (a temperature
fitted on held-out training speakers: `late_fusion.py --calibrate-a`). Both parts must give
class probabilities over the same labels in the same order; an existence model (MLEE's
independent per-emotion probabilities) is refused.

The SavedModel holds the two parts' graphs and variables (loaded with `tf.saved_model.load`
and saved again), so it loads without keras_ser and without the parts' folders. Written to a
temporary folder and renamed, as every export.

    keras_ser-fuse runs/cnn runs/ref runs/hybrid/export/hybrid    # run folders or export folders
"""

import glob
import inspect
import os

from keras_ser.errors import ExportError
from keras_ser.serving.export import open_export
from keras_ser.utils import atomic_path, write_json

# Keys of a part's keras_ser.json that say how to make its inputs (keras_ser-predict reads them).
_WAVEFORM_KEYS = ("frontend", "normalization", "trim_db", "sample_rate", "vocabulary")
_FEATURE_KEYS = ("feature_set", "feature_names")


def _export_of(path):
    """A run folder's export (`<run>/export/<name>`), else `path` itself."""
    if not os.path.isfile(os.path.join(path, "metrics.json")) or os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    exports = sorted(d for d in glob.glob(os.path.join(path, "export", "*")) if os.path.isdir(d))
    if not exports:
        raise ExportError(f"{path}: a run folder without an export (export.enabled was false, or the SVM "
                          "reference, which is not exported)")
    if len(exports) > 1:
        raise ExportError(f"{path}: a run folder with several exports ({', '.join(map(os.path.basename, exports))}): "
                          "give the one to fuse")
    return exports[0]


def _check_parts(meta_a, meta_b, path_a, path_b):
    for path, meta in ((path_a, meta_a), (path_b, meta_b)):
        if meta.get("emotion_head") == "existence":
            raise ExportError(f"{path}: gives existence probabilities (independent per emotion), not class "
                              "probabilities: late fusion averages class probabilities")
        if "emotion" not in meta.get("heads", []) or not meta.get("label_names"):
            raise ExportError(f"{path}: has no `emotion` head with label names: nothing to fuse")
    if list(meta_a["label_names"]) != list(meta_b["label_names"]):
        raise ExportError(f"{path_a} and {path_b} give other labels (or another order): "
                          f"{meta_a['label_names']} / {meta_b['label_names']}")
    if "feature_set" in meta_a and "feature_set" in meta_b:
        raise ExportError(f"{path_a} and {path_b} both take openSMILE functionals: fuse a network with the reference")
    if "frontend" in meta_a and "frontend" in meta_b and meta_a["frontend"] != meta_b["frontend"]:
        if meta_a.get("normalization") == "speaker" or meta_b.get("normalization") == "speaker":
            raise ExportError(f"{path_a} and {path_b} have other frontends and one normalises by speaker: "
                              "one set of speaker statistics cannot serve both")


def _union_inputs(fa, fb, path_a, path_b):
    """`{name: TensorSpec}` of both signatures' inputs; the same name must have the same spec."""
    specs = dict(fa.structured_input_signature[1])
    for name, spec in fb.structured_input_signature[1].items():
        if name in specs and (specs[name].shape.as_list() != spec.shape.as_list() or specs[name].dtype != spec.dtype):
            raise ExportError(f"{path_a} and {path_b} both take {name!r}, as {specs[name].shape} {specs[name].dtype.name} "
                              f"and {spec.shape} {spec.dtype.name}: they cannot share it")
        specs.setdefault(name, spec)
    return specs


def export_fusion(path_a, path_b, base_dir, weight=0.5, temperature_a=1.0, temperature_b=1.0, version=1):
    """Write the late fusion of the exports `path_a` and `path_b` to `base_dir/version`.

    Args:
        path_a, path_b: export folders (a version folder, or the model folder: its latest), or
            run folders (their export).
        base_dir: the fused model's folder (TF Serving's `model_base_path`).
        weight: the weight of a's probabilities (b's: 1 - weight), in [0, 1].
        temperature_a, temperature_b: each part's probabilities to the power 1 / T (> 0).
        version: the version folder to write.

    Returns:
        the version folder written. Raises `ExportError` naming the folder and the problem when
        the parts cannot be fused.
    """
    import tensorflow as tf

    if not 0.0 <= float(weight) <= 1.0:
        raise ExportError(f"weight {weight}: must be in [0, 1]")
    for name, t in (("temperature_a", temperature_a), ("temperature_b", temperature_b)):
        if not float(t) > 0:
            raise ExportError(f"{name} {t}: must be > 0")
    path_a, meta_a = open_export(_export_of(path_a))
    path_b, meta_b = open_export(_export_of(path_b))
    _check_parts(meta_a, meta_b, path_a, path_b)

    module = tf.Module()
    try:
        module.a, module.b = tf.saved_model.load(path_a), tf.saved_model.load(path_b)
    except Exception as exc:  # corrupt protobufs and missing variables raise many types
        raise ExportError(f"{path_a} or {path_b}: does not load ({type(exc).__name__}: {str(exc)[:200]})") from None
    fa, fb = module.a.signatures["serving_default"], module.b.signatures["serving_default"]
    specs = _union_inputs(fa, fb, path_a, path_b)
    names = sorted(specs)
    takes_a, takes_b = set(fa.structured_input_signature[1]), set(fb.structured_input_signature[1])
    # The parts' other outputs, passed through: `{(part, output): name in the fused model}`.
    others = {part: [k for k in f.structured_outputs if k not in ("emotion", "status")]
              for part, f in (("a", fa), ("b", fb))}
    passed = {(part, k): f"{k}_{part}" if k in others["b" if part == "a" else "a"] or k in ("emotion_a", "emotion_b")
              else k for part, keys in others.items() for k in keys}

    def soften(p, t):
        if t == 1.0:
            return p
        logp = tf.math.log(tf.clip_by_value(p, 1e-12, 1.0)) / t
        return tf.nn.softmax(logp, axis=-1)  # NaN rows (an utterance not scored) stay NaN

    def serve(*args):
        x = dict(zip(names, args))
        out_a = module.a.signatures["serving_default"](**{k: x[k] for k in takes_a})
        out_b = module.b.signatures["serving_default"](**{k: x[k] for k in takes_b})
        pa = soften(tf.cast(out_a["emotion"], tf.float32), float(temperature_a))
        pb = soften(tf.cast(out_b["emotion"], tf.float32), float(temperature_b))
        sa = tf.cast(out_a.get("status", tf.zeros_like(pa[:, 0], tf.int32)), tf.int32)
        sb = tf.cast(out_b.get("status", tf.zeros_like(pb[:, 0], tf.int32)), tf.int32)
        out = {"emotion": float(weight) * pa + (1.0 - float(weight)) * pb, "emotion_a": pa, "emotion_b": pb,
               "status": tf.where(sa != 0, sa, 100 * sb)}
        for part, part_out in (("a", out_a), ("b", out_b)):
            out.update({passed[part, k]: v for k, v in part_out.items() if (part, k) in passed})
        return out

    # The signature's inputs are named after the function's parameters: give it the inputs' names.
    serve.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    fn = tf.function(serve, input_signature=[tf.TensorSpec(specs[n].shape, specs[n].dtype, name=n) for n in names])

    codes = {"0": "ok"}
    codes.update({k: f"{path_a}: {v}" for k, v in meta_a.get("status_codes", {}).items() if k != "0"})
    codes.update({str(100 * int(k)): f"{path_b}: {v}" for k, v in meta_b.get("status_codes", {}).items() if k != "0"})
    meta = {"label_names": list(meta_a["label_names"]),
            "heads": ["emotion", "emotion_a", "emotion_b", *sorted(passed.values())],
            "status_codes": codes, "signatures": {"serving_default": names},
            "fusion": {"a": os.path.abspath(path_a), "b": os.path.abspath(path_b), "weight": float(weight),
                       "temperature_a": float(temperature_a), "temperature_b": float(temperature_b)}}
    for part in (meta_a, meta_b):  # how keras_ser-predict makes each part's inputs
        meta.update({k: part[k] for k in _WAVEFORM_KEYS if k in part and "frontend" in part})
        if "feature_set" in part:
            meta.update({k: part[k] for k in _FEATURE_KEYS})
            meta["feature_normalization"] = part.get("normalization", "train")
    out_dir = os.path.join(base_dir, str(int(version)))
    os.makedirs(base_dir, exist_ok=True)
    with atomic_path(out_dir) as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": fn.get_concrete_function()})
        write_json(meta, os.path.join(tmp, "keras_ser.json"))
    return out_dir
