"""Export a trained model as a SavedModel that TF Serving loads.

Two signatures:
    serving_default   waveform (batch, samples) float32 16 kHz, zero-padded
                      + num_samples (batch,) int32
                      → the model's named heads (features and normalisation run in the graph)
    features          features (batch, frames, dim) float32 + num_frames (batch,) int32
                      → the same heads, for precomputed features

A model with word inputs (FG_CME) takes them in both signatures, after the audio: word_ids
(batch, words) int32, word_starts and word_ends (batch, words) float32 seconds, num_words
(batch,) int32.

Both signatures check their inputs in the graph, so TF Serving callers get the checks too:
    a request that does not fit together (an empty batch; lengths of another batch size than
    the waveforms; a length <= 0 or beyond the padded input; word counts beyond the word
    inputs) fails with INVALID_ARGUMENT and a message saying which;
    an utterance whose content cannot be scored gets `status` != 0 and NaN in every head
    (the others in the batch are scored as usual): STATUS_CODES below.

Layout `<base>/<version>/` as TF Serving expects; `keras_ser.json` beside `saved_model.pb` records
the frontend, the label names and the signatures. Written to a temporary folder and renamed,
so an interrupted export never leaves a version folder that looks valid.
"""

import os

from keras_ser.audio.frontends import compute_features, frontend_matrix, get_frontend_config
from keras_ser.audio.trim import trim_bounds_tf
from keras_ser.errors import ExportError
from keras_ser.utils import atomic_path, read_json, write_json

# `status` output: why an utterance was not scored (its heads are NaN).
STATUS_CODES = {0: "ok", 1: "NaN or infinite samples", 2: "samples beyond full scale (|x| > 1.5)",
                3: "too short (less than one analysis window or 0.05 s)", 4: "digital silence (peak < 1e-4)"}
MAX_PEAK, SILENCE_PEAK, MIN_SECONDS = 1.5, 1e-4, 0.05  # as keras_ser.audio.load_audio


def _structure_checks(batch, lengths, length_name, padded, what):
    """Asserts that a request fits together: a non-empty batch, one length per row, lengths
    in [1, padded length]."""
    import tensorflow as tf

    return [
        tf.debugging.assert_positive(batch, message="empty batch: no utterance in the request"),
        tf.debugging.assert_equal(tf.shape(lengths)[0], batch,
                                  message=f"{length_name} must have one entry per row of {what}"),
        tf.debugging.assert_positive(lengths, message=f"{length_name} must be > 0"),
        tf.debugging.assert_less_equal(lengths, padded,
                                       message=f"{length_name} must not exceed the length of {what}'s rows"),
    ]


def _word_checks(batch, word_names, words):
    import tensorflow as tf

    w = dict(zip(word_names, words))
    checks = []
    for name, x in w.items():
        checks.append(tf.debugging.assert_equal(tf.shape(x)[0], batch, message=f"{name} must have one row per utterance"))
    if "num_words" in w:
        checks.append(tf.debugging.assert_non_negative(w["num_words"], message="num_words must be >= 0"))
        if "word_ids" in w:
            checks.append(tf.debugging.assert_less_equal(w["num_words"], tf.shape(w["word_ids"])[1],
                                                         message="num_words must not exceed the width of word_ids"))
    return checks


def export_model(model, base_dir, version=1, frontend="mlee", label_names=None, overwrite=True, metadata=None,
                 normalization="train", trim_db=None):
    """Export `model` (inputs `features`, `num_frames`; dict outputs) to `base_dir/version`.

    Args:
        model: Keras model with dict inputs {"features", "num_frames"} and dict outputs.
        base_dir: str. The model's folder (TF Serving's `model_base_path`).
        version: int. Version number (a sub-folder).
        frontend: preset name or dict of the features the model was trained on.
        label_names: list of str, written to keras_ser.json.
        metadata: optional dict, added to keras_ser.json (e.g. what each head means).
        normalization: the run's `data.normalization`. "train": the model holds the training
            statistics. "utterance": both signatures normalise each utterance by its own
            frames before the model, as the training pipeline did. "speaker": both signatures
            also take `speaker_mean` and `speaker_std` float32 `(batch, dim)`: the statistics
            of the speaker's features over that speaker's own audio (keras_ser-predict
            computes them from the files it is given).
        trim_db: float or None. `serving_default` trims leading and trailing silence as the
            training records were (`data.trim_silence`, `keras_ser.audio.trim`).

    Returns:
        str, the version folder.
    """
    import keras
    import tensorflow as tf

    fcfg = get_frontend_config(frontend)
    matrix = frontend_matrix(fcfg)
    out_dir = os.path.join(base_dir, str(int(version)))
    if os.path.exists(out_dir):
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists")
    os.makedirs(base_dir, exist_ok=True)
    head_names = sorted(model.output.keys() if isinstance(model.output, dict) else ["output"])
    word_specs = [spec for spec in (
        tf.TensorSpec([None, None], tf.int32, name="word_ids"), tf.TensorSpec([None, None], tf.float32, name="word_starts"),
        tf.TensorSpec([None, None], tf.float32, name="word_ends"), tf.TensorSpec([None], tf.int32, name="num_words"),
    ) if spec.name in model.input]
    word_names = [spec.name for spec in word_specs]
    speaker_specs = [tf.TensorSpec([None, fcfg.feature_dim], tf.float32, name=n)
                     for n in ("speaker_mean", "speaker_std")] if normalization == "speaker" else []
    extra_specs = word_specs + speaker_specs
    extra_names = [spec.name for spec in extra_specs]

    min_samples = max(fcfg.min_samples(), int(MIN_SECONDS * fcfg.sample_rate))

    def scored(out, status):
        """The heads, NaN for the utterances that were not scored, and their status."""
        bad = tf.not_equal(status, 0)
        out = {k: tf.where(tf.reshape(bad, [-1] + [1] * (v.shape.rank - 1)), tf.constant(float("nan")), v)
               for k, v in out.items()}
        out["status"] = tf.identity(status, name="status")
        return out

    def run_model(features, num_frames, *extras):
        x = dict(zip(extra_names, extras))
        mask = tf.sequence_mask(num_frames, tf.shape(features)[1], dtype=features.dtype)[..., None]
        if normalization == "utterance":  # as keras_ser.training.data.normalizer, over the real frames
            n = tf.maximum(tf.reduce_sum(mask, 1, keepdims=True), 1.0)
            mean = tf.reduce_sum(features * mask, 1, keepdims=True) / n
            var = tf.reduce_sum(tf.square((features - mean) * mask), 1, keepdims=True) / n
            features = (features - mean) / tf.sqrt(tf.maximum(var, 1e-6)) * mask
        elif normalization == "speaker":
            features = (features - x["speaker_mean"][:, None, :]) / x["speaker_std"][:, None, :] * mask
        out = model({"features": features, "num_frames": num_frames, **{k: x[k] for k in word_names}}, training=False)
        return {k: tf.cast(v, tf.float32) for k, v in out.items()}

    def checks_of(batch, extras):
        x = dict(zip(extra_names, extras))
        out = _word_checks(batch, word_names, [x[k] for k in word_names])
        if normalization == "speaker":
            out += [tf.debugging.assert_equal(tf.shape(x[k])[0], batch, message=f"{k} must have one row per utterance")
                    for k in ("speaker_mean", "speaker_std")]
            out.append(tf.debugging.assert_positive(x["speaker_std"], message="speaker_std must be > 0"))
        return out

    def heads(features, num_frames, *words):
        batch = tf.shape(features)[0]
        checks = _structure_checks(batch, num_frames, "num_frames", tf.shape(features)[1], "features")
        with tf.control_dependencies(checks + checks_of(batch, words)):
            real = tf.sequence_mask(num_frames, tf.shape(features)[1])[..., None]
            finite = tf.reduce_all(tf.math.is_finite(features) | ~real, axis=[1, 2])
            status = tf.where(finite, 0, 1)
            clean = tf.where(real & finite[:, None, None], features, 0.0)
            return scored(run_model(clean, num_frames, *words), status)

    def from_waveform(waveform, num_samples, *words):
        batch = tf.shape(waveform)[0]
        checks = _structure_checks(batch, num_samples, "num_samples", tf.shape(waveform)[1], "waveform")
        with tf.control_dependencies(checks + checks_of(batch, words)):
            real = tf.sequence_mask(num_samples, tf.shape(waveform)[1])
            finite = tf.reduce_all(tf.math.is_finite(waveform) | ~real, axis=1)
            x = tf.where(real & finite[:, None], waveform, 0.0)
            peak = tf.reduce_max(tf.abs(x), axis=1)
            status = tf.where(~finite, 1, tf.where(peak > MAX_PEAK, 2, tf.where(
                num_samples < min_samples, 3, tf.where(peak < SILENCE_PEAK, 4, 0))))
            ok = tf.equal(status, 0)
            x = tf.where(ok[:, None], x, 0.0)
            if trim_db:  # as the training records were: from the first to the last loud frame
                start, end = trim_bounds_tf(x, num_samples, trim_db)
                length = tf.maximum(end - start, 1)
                idx = tf.minimum(start[:, None] + tf.range(tf.reduce_max(length))[None, :], tf.shape(x)[1] - 1)
                x = tf.gather(x, idx, batch_dims=1) * tf.sequence_mask(length, tf.shape(idx)[1], dtype=x.dtype)
                # Too short once trimmed (a click in silence): not scored, as the record writer skips it.
                status = tf.where(ok & (length < min_samples), 3, status)
                ok = tf.equal(status, 0)
                x = tf.pad(x, [[0, 0], [0, tf.maximum(0, min_samples - tf.shape(x)[1])]])
                num_samples = tf.where(ok, length, min_samples)
                if word_names:  # word times given against the untrimmed audio move with its start
                    shift = tf.cast(start, tf.float32)[:, None] / float(fcfg.sample_rate)
                    words = [tf.maximum(w - shift, 0.0) if n in ("word_starts", "word_ends") else w
                             for n, w in zip(extra_names, words)]
            # An utterance that is not scored still needs one frame for the model to run on.
            feats, n = compute_features(x, tf.where(ok, num_samples, min_samples), fcfg, matrix=matrix)
            out = scored(run_model(feats, n, *words), status)
            out["num_frames"] = tf.where(ok, n, 0)
            return out

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default", fn=from_waveform,
        input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform"),
                         tf.TensorSpec([None], tf.int32, name="num_samples"), *extra_specs],
    )
    archive.add_endpoint(
        name="features", fn=heads,
        input_signature=[tf.TensorSpec([None, None, fcfg.feature_dim], tf.float32, name="features"),
                         tf.TensorSpec([None], tf.int32, name="num_frames"), *extra_specs],
    )
    with atomic_path(out_dir) as tmp:  # TF Serving ignores the non-numeric `<version>.tmp-<pid>`
        archive.write_out(tmp, verbose=False)
        write_json({"frontend": fcfg.to_dict(), "label_names": list(label_names or []), "heads": head_names,
                    "status_codes": {str(k): v for k, v in STATUS_CODES.items()},
                    "normalization": normalization, "trim_db": trim_db,
                    "signatures": {"serving_default": ["waveform", "num_samples", *extra_names],
                                   "features": ["features", "num_frames", *extra_names]},
                    "sample_rate": fcfg.sample_rate, **(metadata or {})}, os.path.join(tmp, "keras_ser.json"))
    return out_dir


def export_vector_model(model, base_dir, version=1, label_names=None, metadata=None):
    """Export a model of one feature vector per utterance (`{"features": (batch, D)}` → dict of
    heads; the functionals reference) to `base_dir/version`: `serving_default` takes
    `features` float32 `(batch, D)` and returns the heads and `status` (1: a non-finite value;
    its heads are NaN); a batch of 0 rows fails with INVALID_ARGUMENT."""
    import keras
    import tensorflow as tf

    d = int(model.input["features"].shape[-1])
    out_dir = os.path.join(base_dir, str(int(version)))
    os.makedirs(base_dir, exist_ok=True)

    def serve(features):
        with tf.control_dependencies([tf.debugging.assert_positive(tf.shape(features)[0],
                                                                   message="empty batch: no utterance in the request")]):
            finite = tf.reduce_all(tf.math.is_finite(features), axis=1)
            out = model({"features": tf.where(finite[:, None], features, 0.0)}, training=False)
            out = {k: tf.where(finite[:, None], tf.cast(v, tf.float32), float("nan")) for k, v in out.items()}
            out["status"] = tf.where(finite, 0, 1)
            return out

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve,
                         input_signature=[tf.TensorSpec([None, d], tf.float32, name="features")])
    with atomic_path(out_dir) as tmp:
        archive.write_out(tmp, verbose=False)
        write_json({"label_names": list(label_names or []), "heads": sorted(model.output.keys()),
                    "status_codes": {"0": "ok", "1": "NaN or infinite features"},
                    "signatures": {"serving_default": ["features"]}, **(metadata or {})},
                   os.path.join(tmp, "keras_ser.json"))
    return out_dir


def latest_version(base_dir):
    versions = [int(d) for d in os.listdir(base_dir) if d.isdigit()]
    if not versions:
        raise FileNotFoundError(f"{base_dir}: no numbered version folder")
    return os.path.join(base_dir, str(max(versions)))


def open_export(path):
    """`(version folder, keras_ser.json contents)` of an export: a version folder, or the model
    folder (its latest version). Raises `ExportError` naming the folder and what is wrong
    (missing, a file, no version, not keras_ser's, incomplete) before TensorFlow reads it."""
    if not os.path.exists(path):
        raise ExportError(f"{path}: no such export folder")
    if not os.path.isdir(path):
        raise ExportError(f"{path}: a file, not an export folder (keras_ser-predict EXPORT_DIR AUDIO ...: "
                          "the export folder comes first)")
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        try:
            path = latest_version(path)
        except FileNotFoundError:
            raise ExportError(f"{path}: not an export: no saved_model.pb and no numbered version folder") from None
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ExportError(f"{path}: incomplete export: no saved_model.pb")
    if not os.path.isdir(os.path.join(path, "variables")):
        raise ExportError(f"{path}: incomplete export: no variables/ folder")
    meta_path = os.path.join(path, "keras_ser.json")
    if not os.path.exists(meta_path):
        raise ExportError(f"{path}: no keras_ser.json: not exported by keras_ser (label names unknown)")
    try:
        meta = read_json(meta_path)
    except ValueError as exc:
        raise ExportError(f"{meta_path}: not valid JSON ({exc})") from None
    return path, meta


def load_signature(path, name="serving_default"):
    """The signature `name` of the SavedModel in `path`; `ExportError` when it does not load."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(path)
    except Exception as exc:  # corrupt protobufs and missing variables raise many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"{path}: the SavedModel does not load ({type(exc).__name__}: {first[:200]})") from None
    if name not in loaded.signatures:
        raise ExportError(f"{path}: no signature {name!r} (it has {', '.join(sorted(loaded.signatures))})")
    return loaded.signatures[name]
