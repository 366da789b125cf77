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

Layout `<base>/<version>/` as TF Serving expects; `keras_ser.json` beside `saved_model.pb` records
the frontend, the label names and the signatures. Written to a temporary folder and renamed,
so an interrupted export never leaves a version folder that looks valid.
"""

import os

from keras_ser.audio.frontends import compute_features, frontend_matrix, get_frontend_config
from keras_ser.utils import atomic_path, write_json


def export_model(model, base_dir, version=1, frontend="mlee", label_names=None, overwrite=True, metadata=None):
    """Export `model` (inputs `features`, `num_frames`; dict outputs) to `base_dir/version`.

    Args:
        model: Keras model with dict inputs {"features", "num_frames"} and dict outputs.
        base_dir: str. The model's folder (TF Serving's `model_base_path`).
        version: int. Version number (a sub-folder).
        frontend: preset name or dict of the features the model was trained on.
        label_names: list of str, written to keras_ser.json.
        metadata: optional dict, added to keras_ser.json (e.g. what each head means).

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

    def heads(features, num_frames, *words):
        out = model({"features": features, "num_frames": num_frames, **dict(zip(word_names, words))}, training=False)
        return {k: tf.identity(tf.cast(v, tf.float32), name=k) for k, v in out.items()}

    def from_waveform(waveform, num_samples, *words):
        feats, n = compute_features(waveform, num_samples, fcfg, matrix=matrix)
        out = heads(feats, n, *words)
        out["num_frames"] = n
        return out

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default", fn=from_waveform,
        input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform"),
                         tf.TensorSpec([None], tf.int32, name="num_samples"), *word_specs],
    )
    archive.add_endpoint(
        name="features", fn=heads,
        input_signature=[tf.TensorSpec([None, None, fcfg.feature_dim], tf.float32, name="features"),
                         tf.TensorSpec([None], tf.int32, name="num_frames"), *word_specs],
    )
    with atomic_path(out_dir) as tmp:  # TF Serving ignores the non-numeric `<version>.tmp-<pid>`
        archive.write_out(tmp, verbose=False)
        write_json({"frontend": fcfg.to_dict(), "label_names": list(label_names or []), "heads": head_names,
                    "signatures": {"serving_default": ["waveform", "num_samples", *word_names],
                                   "features": ["features", "num_frames", *word_names]},
                    "sample_rate": fcfg.sample_rate, **(metadata or {})}, os.path.join(tmp, "keras_ser.json"))
    return out_dir


def latest_version(base_dir):
    versions = [int(d) for d in os.listdir(base_dir) if d.isdigit()]
    if not versions:
        raise FileNotFoundError(f"{base_dir}: no numbered version folder")
    return os.path.join(base_dir, str(max(versions)))
