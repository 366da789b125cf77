"""Reading record datasets written by `tfrecords_tools.writer` as tf.data pipelines.

    rs = RecordSet("data/mlee_synthetic")
    train_files = rs.files(keys=train_speakers, with_perturbed=True)
    stats = rs.feature_stats(train_files)          # training split only
    ds = rs.dataset(train_files, batch_size=16, shuffle=True, bucket=True)
"""

import json
import os

import numpy as np
import pandas as pd

from keras_ser.audio.normalization import FeatureStats
from keras_ser.corpora.manifest import read_manifest
from keras_ser.errors import RecordError
from keras_ser.utils import file_checksum
from tfrecords_tools.schema import SCHEMA_VERSION, parse_example

DATASET_FILE = "dataset.json"


def bucket_boundaries_for(lengths, num_buckets=8):
    """Bucket boundaries at quantiles of `lengths` (unique, increasing, > 0)."""
    lengths = np.asarray(lengths)
    if len(lengths) == 0:
        return []
    qs = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in qs if q > 0})


def _with_autotune(ds, enabled):
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = bool(enabled)
    return ds.with_options(options)


def padded_fraction(dataset):
    """Fraction of feature frames in a batched dataset that are padding (0 = none)."""
    real = total = 0
    for batch in dataset:
        n = batch["num_frames"].numpy()
        real += int(n.sum())
        total += len(n) * int(batch["features"].shape[1])
    return 1.0 - real / total if total else 0.0


class RecordSet:
    """A complete record dataset folder (see `tfrecords_tools.writer` for the layout).

    Raises `RecordError` naming the folder when `dataset.json` is missing (an incomplete or
    interrupted write) or a shard it lists is missing.
    """

    def __init__(self, root):
        self.root = os.fspath(root)
        meta = os.path.join(self.root, DATASET_FILE)
        if not os.path.exists(meta):
            raise RecordError(f"{self.root}: no {DATASET_FILE}: not a record dataset, or its "
                              "writing did not finish (write it again)")
        with open(meta) as f:
            self.meta = json.load(f)
        if self.meta.get("schema_version") != SCHEMA_VERSION:
            raise RecordError(f"{meta}: schema version {self.meta.get('schema_version')} "
                              f"is not {SCHEMA_VERSION}; write the records again")
        for s in self.meta["shards"]:
            path = os.path.join(self.root, "shards", s["file"])
            if not os.path.exists(path):
                raise RecordError(f"{self.root}: shard {s['file']} listed in {DATASET_FILE} is missing")
            if "bytes" in s and os.path.getsize(path) != s["bytes"]:
                raise RecordError(f"{path}: damaged shard: {os.path.getsize(path)} bytes, {DATASET_FILE} "
                                  f"says {s['bytes']} (truncated or overwritten)")
        self._manifest = None

    def verify(self):
        """Check every shard's checksum against `dataset.json`; `RecordError` names a damaged one
        (a bit flip TensorFlow would otherwise meet mid-training as a DataLossError)."""
        for s in self.meta["shards"]:
            path = os.path.join(self.root, "shards", s["file"])
            if "checksum" in s and file_checksum(path) != s["checksum"]:
                raise RecordError(f"{path}: damaged shard: its checksum differs from {DATASET_FILE}'s")
        return self

    def skipped(self):
        """The files the writer could not use (`skipped.csv`): `[{"path", "reason"}]`."""
        path = os.path.join(self.root, "skipped.csv")
        if not os.path.exists(path):
            return []
        return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict(orient="records")

    @property
    def label_names(self):
        return list(self.meta["label_names"])

    @property
    def feature_dim(self):
        return int(self.meta["feature_dim"])

    @property
    def frontend(self):
        return dict(self.meta["frontend"])

    @property
    def keys(self):
        """Shard keys (speakers or sessions)."""
        return sorted({s["key"] for s in self.meta["shards"]})

    @property
    def manifest(self):
        if self._manifest is None:
            self._manifest = read_manifest(os.path.join(self.root, "manifest.jsonl"))
        return self._manifest

    def files(self, keys=None, with_perturbed=False):
        """Shard paths for `keys` (all when None); speed-perturbed shards only if asked."""
        keys = None if keys is None else {str(k) for k in keys}
        out = []
        for s in self.meta["shards"]:
            if keys is not None and s["key"] not in keys:
                continue
            if s["speed"] != 1.0 and not with_perturbed:
                continue
            out.append(os.path.join(self.root, "shards", s["file"]))
        return out

    def feature_stats(self, files):
        """Merged `FeatureStats` of the given shards (pass the training shards only)."""
        if not files:
            raise RecordError(f"{self.root}: no shards to compute feature statistics over")
        return FeatureStats.merge_all(
            FeatureStats.load(os.path.join(self.root, "stats", os.path.basename(f) + ".json")) for f in files
        )

    def lengths(self, files=None):
        m = self.manifest
        if files is not None:
            m = m[m["shard"].isin({os.path.basename(f) for f in files})]
        return m["num_frames"].to_numpy()

    def dataset(self, files, batch_size=16, shuffle=False, seed=0, bucket=True, num_buckets="auto",
                cache=False, repeat=False, drop_remainder=False, with_waveform=False,
                max_frames=None, map_fn=None, filter_fn=None, shuffle_buffer=2048, autotune=False):
        """A tf.data pipeline over `files`: interleave, parse, cache, shuffle, bucket, pad, prefetch.

        Args:
            files: list of shard paths (see `files()`).
            batch_size: int, or None for single examples (no padding; `bucket` is ignored).
            shuffle: bool. Shuffle shards and examples (seeded).
            seed: int.
            bucket: bool. Bucket by `num_frames` (boundaries at length quantiles) so that
                batches hold similar lengths; otherwise plain padded batches.
            num_buckets: int or "auto" (about two batches per bucket, at most 32).
            cache: bool or str. Cache parsed examples in memory (True) or in a file (str).
            repeat: bool. Repeat forever.
            drop_remainder: bool.
            with_waveform: bool. Parse the stored waveform (the dataset must include it).
            max_frames: int or None. Crop features to at most this many frames (from the start).
            map_fn: optional function applied to each parsed example before batching.
            filter_fn: optional predicate on parsed examples (e.g. a fold's utterance ids).
            autotune: bool. tf.data's autotuner (`Options.autotune.enabled`) for this pipeline and
                any built on it. Off by default: with TensorFlow 2.21 on CPU, Keras's
                destruction of a finished iterator at each epoch's evaluation waited for the
                autotuner's thread, up to 100 s an epoch. Without it, `AUTOTUNE`
                parallelism is the number of cores (at most 16).

        Returns:
            `tf.data.Dataset` of dicts; `features` is `(batch, frames, dim)` zero-padded,
            `num_frames` `(batch,)`; word and segment lists are zero-padded with `num_words`.
        """
        import tensorflow as tf

        if not files:
            raise RecordError(f"{self.root}: no shards selected")
        if with_waveform and not self.meta.get("include_waveform"):
            raise RecordError(f"{self.root}: written without waveforms (include_waveform=False)")
        num_labels, dim = len(self.label_names), self.feature_dim
        ds = tf.data.Dataset.from_tensor_slices(list(files))
        if shuffle:
            ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
        ds = ds.map(lambda x: parse_example(x, num_labels, dim, with_waveform),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if max_frames:
            def crop(ex):
                ex = dict(ex)
                ex["features"] = ex["features"][:max_frames]
                ex["num_frames"] = tf.minimum(ex["num_frames"], max_frames)
                return ex
            ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
        if filter_fn is not None:
            ds = ds.filter(filter_fn)
        if cache:
            ds = ds.cache(cache if isinstance(cache, str) else "")
        if shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        if map_fn is not None:
            ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE)
        if batch_size is None:
            return _with_autotune(ds.prefetch(tf.data.AUTOTUNE), autotune)
        if bucket:
            lengths = np.minimum(self.lengths(files), max_frames or np.inf)
            if num_buckets == "auto":
                num_buckets = int(np.clip(len(lengths) // (2 * batch_size), 1, 32))
            bounds = bucket_boundaries_for(lengths, num_buckets)
            ds = ds.bucket_by_sequence_length(
                lambda ex: ex["num_frames"], bucket_boundaries=bounds,
                bucket_batch_sizes=[batch_size] * (len(bounds) + 1), drop_remainder=drop_remainder,
            )
        else:
            ds = ds.padded_batch(batch_size, drop_remainder=drop_remainder)
        return _with_autotune(ds.prefetch(tf.data.AUTOTUNE), autotune)

    def __repr__(self):
        return (f"RecordSet({self.root!r}: {self.meta['num_examples']} examples, "
                f"{len(self.meta['shards'])} shards, dim {self.feature_dim}, labels {self.label_names})")
