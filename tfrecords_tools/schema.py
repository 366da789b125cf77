"""The record schema: one `tf.train.Example` per utterance.

Features are stored as `tf.io.serialize_tensor` bytes of a float32 `(frames, dim)` tensor plus
`num_frames` (about 20x faster to write than a SequenceExample of frames). Every other field:

    utterance_id, speaker, corpus, session, gender, emotion, intensity, text   bytes
    label                int64   index of `emotion` in the dataset's label names, -1 if none
    strength             float   emotion strength in [0, 1], NaN when unknown
    annotation_counts    float[K] annotators who gave each label (an annotator may give several)
    num_annotators       int64
    words                bytes[W]; word_starts, word_ends float[W] (seconds)
    segment_starts, segment_ends, segment_strengths float[S]; segment_labels int64[S]
    features             bytes (serialized float32 (frames, dim)); num_frames, feature_dim int64
    waveform             bytes (serialized float32 (samples,)), optional; num_samples int64
"""

import math

SCHEMA_VERSION = 1

STRING_FIELDS = ("utterance_id", "speaker", "corpus", "session", "gender", "emotion", "intensity", "text")
FLOAT_LIST_FIELDS = ("word_starts", "word_ends", "segment_starts", "segment_ends", "segment_strengths")


def _bytes(values):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _floats(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _ints(values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _str(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return b""
    return str(v).encode("utf-8")


def annotation_counts(annotations, label_names):
    """Per-label count of annotators who gave it; labels outside `label_names` are not counted."""
    counts = [0.0] * len(label_names)
    index = {n: i for i, n in enumerate(label_names)}
    for labels in annotations or []:
        for lab in set(labels):
            if lab in index:
                counts[index[lab]] += 1.0
    return counts


def make_example(row, features, label_names, waveform=None):
    """Serialize one manifest row with its features.

    Args:
        row: dict with the manifest columns.
        features: np.ndarray float32 `(frames, dim)` of real frames.
        label_names: list of str. Emotion labels of the dataset (defines `label` and counts).
        waveform: optional np.ndarray float32 `(samples,)`.

    Returns:
        bytes (a serialized `tf.train.Example`).
    """
    import numpy as np
    import tensorflow as tf

    features = np.asarray(features, np.float32)
    emotion = row.get("emotion")
    label = label_names.index(emotion) if emotion in label_names else -1
    strength = row.get("strength")
    strength = float("nan") if strength is None else float(strength)
    annotations = row.get("annotations")
    if isinstance(annotations, float):
        annotations = None
    words = row.get("words") or []
    if isinstance(words, float):
        words = []
    segments = row.get("emotion_segments") or []
    if isinstance(segments, float):
        segments = []
    feat = {k: _bytes([_str(row.get(k))]) for k in STRING_FIELDS}
    feat.update({
        "label": _ints([label]),
        "strength": _floats([strength]),
        "annotation_counts": _floats(annotation_counts(annotations, label_names)),
        "num_annotators": _ints([len(annotations or [])]),
        "words": _bytes([_str(w[0]) for w in words]),
        "word_starts": _floats([float(w[1]) for w in words]),
        "word_ends": _floats([float(w[2]) for w in words]),
        "segment_starts": _floats([float(s[0]) for s in segments]),
        "segment_ends": _floats([float(s[1]) for s in segments]),
        "segment_labels": _ints([label_names.index(s[2]) if s[2] in label_names else -1 for s in segments]),
        "segment_strengths": _floats([float(s[3]) for s in segments]),
        "features": _bytes([tf.io.serialize_tensor(features).numpy()]),
        "num_frames": _ints([features.shape[0]]),
        "feature_dim": _ints([features.shape[1]]),
    })
    if waveform is not None:
        wav = np.asarray(waveform, np.float32)
        feat["waveform"] = _bytes([tf.io.serialize_tensor(wav).numpy()])
        feat["num_samples"] = _ints([wav.shape[0]])
    return tf.train.Example(features=tf.train.Features(feature=feat)).SerializeToString()


def feature_spec(num_labels, with_waveform=False):
    """The `tf.io.parse_single_example` spec for records with `num_labels` labels."""
    import tensorflow as tf

    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in STRING_FIELDS}
    spec.update({
        "label": tf.io.FixedLenFeature([], tf.int64),
        "strength": tf.io.FixedLenFeature([], tf.float32),
        "annotation_counts": tf.io.FixedLenFeature([num_labels], tf.float32),
        "num_annotators": tf.io.FixedLenFeature([], tf.int64),
        "words": tf.io.VarLenFeature(tf.string),
        "word_starts": tf.io.VarLenFeature(tf.float32),
        "word_ends": tf.io.VarLenFeature(tf.float32),
        "segment_starts": tf.io.VarLenFeature(tf.float32),
        "segment_ends": tf.io.VarLenFeature(tf.float32),
        "segment_labels": tf.io.VarLenFeature(tf.int64),
        "segment_strengths": tf.io.VarLenFeature(tf.float32),
        "features": tf.io.FixedLenFeature([], tf.string),
        "num_frames": tf.io.FixedLenFeature([], tf.int64),
        "feature_dim": tf.io.FixedLenFeature([], tf.int64),
    })
    if with_waveform:
        spec["waveform"] = tf.io.FixedLenFeature([], tf.string)
        spec["num_samples"] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def parse_example(serialized, num_labels, feature_dim, with_waveform=False):
    """Parse one serialized example into a dict of dense tensors."""
    import tensorflow as tf

    ex = tf.io.parse_single_example(serialized, feature_spec(num_labels, with_waveform))
    out = {k: ex[k] for k in STRING_FIELDS}
    feats = tf.io.parse_tensor(ex["features"], tf.float32)
    out["features"] = tf.ensure_shape(feats, [None, feature_dim])
    out["num_frames"] = tf.cast(ex["num_frames"], tf.int32)
    out["label"] = tf.cast(ex["label"], tf.int32)
    out["strength"] = ex["strength"]
    out["annotation_counts"] = ex["annotation_counts"]
    out["num_annotators"] = tf.cast(ex["num_annotators"], tf.int32)
    for k in ("words",):
        out[k] = tf.sparse.to_dense(ex[k], default_value=b"")
    for k in FLOAT_LIST_FIELDS:
        out[k] = tf.sparse.to_dense(ex[k])
    out["segment_labels"] = tf.cast(tf.sparse.to_dense(ex["segment_labels"]), tf.int32)
    out["num_words"] = tf.shape(out["word_starts"])[0]
    if with_waveform:
        out["waveform"] = tf.ensure_shape(tf.io.parse_tensor(ex["waveform"], tf.float32), [None])
        out["num_samples"] = tf.cast(ex["num_samples"], tf.int32)
    return out
