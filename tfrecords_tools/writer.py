"""Sharded, atomic TFRecord writer with a manifest and feature statistics beside the shards.

Layout written to `out_dir`:

    shards/<key>.tfrecord              one shard per speaker (or session): folds are file globs
    shards/<key>.sp0.9.tfrecord        speed-perturbed copies (training only), when asked for
    stats/<shard>.json                 FeatureStats (count, sum, sumsq) of that shard's frames
    manifest.jsonl                     the rows written, with `shard` and `num_frames`
    skipped.csv                        files that could not be used, with the reason
    dataset.json                       frontend, label names, shards and counts; written last

Every file is written under a temporary name and renamed, and `dataset.json` is written only when
everything else is complete, so an interrupted run never leaves a dataset that looks valid; a
killed writer's temporary files are removed by the next one. Feature extraction runs in a
process pool (spawn context) over shards; the workers end with their parent.

`dataset.json` holds a fingerprint of what determines the records (the manifest's content,
including each audio file's bytes, the frontend, the label set, the
speed factors, the sharding) and each shard's size and BLAKE2b checksum. An existing dataset
is reused only when its fingerprint matches and every shard is intact; a damaged shard is named
and the dataset rewritten.
"""

import dataclasses
import hashlib
import json
import os
import re
import time

import numpy as np
import pandas as pd

from keras_ser.audio.augment import speed_perturb
from keras_ser.audio.frontends import compute_features, frontend_matrix, get_frontend_config
from keras_ser.audio.io import load_audio
from keras_ser.audio.normalization import FeatureStats
from keras_ser.audio.trim import trim_bounds
from keras_ser.corpora.manifest import content_hash, save_manifest, validate_manifest
from keras_ser.errors import AudioError, RecordError
from keras_ser.utils import (
    atomic_path,
    die_with_parent,
    file_checksum,
    remove_stale_tmp,
    spawn_pool,
    write_csv,
    write_json,
)
from tfrecords_tools.reader import RecordSet
from tfrecords_tools.schema import SCHEMA_VERSION, make_example

DATASET_FILE = "dataset.json"


def shard_name(key, speed=1.0):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(key))
    return f"{safe}.tfrecord" if speed == 1.0 else f"{safe}.sp{speed:g}.tfrecord"


def fingerprint(manifest, frontend, label_names, shard_by="speaker", speed_factors=(), include_waveform=False,
                trim_db=None):
    """What determines a record dataset, hashed (see the module docstring)."""
    frontend = get_frontend_config(frontend)
    h = hashlib.sha256()
    h.update(json.dumps([frontend.to_dict(), list(label_names), shard_by, sorted(float(s) for s in speed_factors),
                         include_waveform, SCHEMA_VERSION] + ([float(trim_db)] if trim_db else [])).encode())
    h.update(content_hash(manifest).encode())
    return h.hexdigest()


def write_shard(task):
    """Worker: load audio, compute features, write one shard atomically. Returns its summary."""
    rows, path, frontend, label_names, speed, include_waveform, trim_db = task
    frontend = get_frontend_config(frontend)
    matrix = frontend_matrix(frontend)
    stats = FeatureStats.zeros(frontend.feature_dim)
    written, skipped = [], []
    with atomic_path(path) as tmp:
        _fill_shard(tmp, rows, frontend, matrix, label_names, speed, include_waveform, stats, written, skipped, trim_db)
        checksum, size = file_checksum(tmp), os.path.getsize(tmp)
    return {"path": path, "written": written, "skipped": skipped, "stats": stats.to_dict(), "checksum": checksum,
            "bytes": size}


def _fill_shard(tmp, rows, frontend, matrix, label_names, speed, include_waveform, stats, written, skipped,
                trim_db=None):
    import tensorflow as tf

    with tf.io.TFRecordWriter(tmp) as writer:
        for row in rows:
            try:
                wav = load_audio(row["path"])
            except AudioError as exc:
                skipped.append({"path": row["path"], "reason": exc.problem})
                continue
            offset = 0.0  # seconds trimmed off the start: word and segment times move with it
            if trim_db:
                start, end = trim_bounds(wav, trim_db)
                wav, offset = wav[start:end], start / 16000.0
            if speed != 1.0:
                wav = speed_perturb(wav, speed)
            if len(wav) < frontend.min_samples():
                skipped.append({"path": row["path"], "reason": f"shorter than one analysis window "
                                f"({len(wav)} < {frontend.min_samples()} samples)"})
                continue
            feats, n = compute_features(wav[None], None, frontend, matrix=matrix)
            feats = feats[0, : int(n[0])].numpy()
            if not np.all(np.isfinite(feats)):
                skipped.append({"path": row["path"], "reason": "features are not finite"})
                continue
            r = dict(row)
            if speed != 1.0:
                r["utterance_id"] = f"{row['utterance_id']}_sp{speed:g}"
            if speed != 1.0 or offset:
                def moved(t, offset=offset, speed=speed):
                    return max(0.0, t - offset) / speed
                r["words"] = [(w, moved(s), moved(e)) for w, s, e in (row.get("words") or [])] or None
                segs = row.get("emotion_segments")
                if isinstance(segs, list):
                    r["emotion_segments"] = [(moved(a), moved(b), e, st) for a, b, e, st in segs]
            writer.write(make_example(r, feats, label_names, wav if include_waveform else None))
            stats.update(feats)
            written.append({"utterance_id": r["utterance_id"], "num_frames": int(feats.shape[0]),
                            "duration": len(wav) / 16000.0, "speed": speed, "trim_start": offset})


def write_records(manifest, out_dir, frontend="mlee", label_names=None, shard_by="speaker",
                  speed_factors=(), include_waveform=False, num_workers=0, overwrite=False, trim_db=None,
                  progress=True):
    """Write a manifest's utterances as sharded TFRecords with features.

    Args:
        manifest: pandas DataFrame in the keras_ser manifest schema.
        out_dir: str. Output folder.
        frontend: preset name, dict or `FrontendConfig`.
        label_names: list of str. Emotion labels; defaults to the sorted emotions in the manifest.
            Utterances whose emotion is not among them get `label = -1` (kept: MLEE's *all* set).
        shard_by: str. "speaker" or "session": one shard per value.
        speed_factors: tuple of float. Extra speed-perturbed copies (e.g. (0.9, 1.1)), each in its
            own shards so that only training folds read them.
        include_waveform: bool. Also store the 16 kHz waveform.
        trim_db: float or None. Drop leading and trailing audio more than this many dB below the
            loudest frame (`keras_ser.audio.trim`) before features are computed.
        num_workers: int. Processes for feature extraction (0 or 1: in this process).
        overwrite: bool. Rewrite even when an identical dataset exists.
        progress: bool. Show a tqdm progress bar.

    Returns:
        `RecordSet` for `out_dir`. Idempotent: an identical complete dataset is reused.
        `tfrecords_tools.beam.write_records_beam` writes the same with an Apache Beam runner.
    """
    plan = plan_records(manifest, out_dir, frontend, label_names, shard_by, speed_factors, include_waveform,
                        trim_db, overwrite)
    if isinstance(plan, RecordSet):
        return plan
    start = time.time()
    results = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan.tasks), desc=f"writing {out_dir}", unit="shard")
    if num_workers and num_workers > 1:
        with spawn_pool(num_workers, die_with_parent) as pool:
            for res in pool.map(write_shard, plan.tasks):
                results.append(res)
                bar and bar.update()
    else:
        for task in plan.tasks:
            results.append(write_shard(task))
            bar and bar.update()
    bar and bar.close()
    return finish_records(plan, results, time.time() - start)


@dataclasses.dataclass
class Plan:
    """What `plan_records` decided: the shard tasks (one per shard key and speed, each written
    by `write_shard`, anywhere) and what `finish_records` needs to describe the dataset."""

    out_dir: str
    tasks: list
    records: list
    fingerprint: str
    frontend: object
    label_names: list
    shard_by: str
    speed_factors: tuple
    include_waveform: bool
    trim_db: object


def plan_records(manifest, out_dir, frontend="mlee", label_names=None, shard_by="speaker", speed_factors=(),
                 include_waveform=False, trim_db=None, overwrite=False):
    """The shard tasks of a dataset (`Plan`), or the existing `RecordSet` when an identical,
    intact dataset is already there. Removes a stopped writer's temporary files, and
    `dataset.json` (the dataset is invalid until it is complete again)."""
    validate_manifest(manifest)
    if shard_by not in ("speaker", "session"):
        raise ValueError(f"shard_by must be 'speaker' or 'session', got {shard_by!r}")
    frontend = get_frontend_config(frontend)
    if label_names is None:
        label_names = sorted(manifest["emotion"].dropna().unique())
    label_names = list(label_names)
    fp = fingerprint(manifest, frontend, label_names, shard_by, speed_factors, include_waveform, trim_db)
    meta_path = os.path.join(out_dir, DATASET_FILE)
    for stale in remove_stale_tmp(out_dir):
        print(f"removed {stale} (left by a writer that was stopped)")
    if os.path.exists(meta_path) and not overwrite:
        with open(meta_path) as f:
            same = json.load(f).get("fingerprint") == fp
        if same:
            try:
                rs = RecordSet(out_dir)
                rs.verify()
                return rs
            except RecordError as exc:
                print(f"{exc}: writing the records again")
    if os.path.exists(meta_path):
        os.remove(meta_path)
    os.makedirs(os.path.join(out_dir, "shards"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "stats"), exist_ok=True)
    records = manifest.to_dict(orient="records")
    tasks = []
    keys = manifest[shard_by].astype(str).to_numpy()
    for key in sorted(set(keys)):
        rows = [r for r, k in zip(records, keys) if k == key]
        for speed in (1.0,) + tuple(float(s) for s in speed_factors if float(s) != 1.0):
            path = os.path.join(out_dir, "shards", shard_name(key, speed))
            tasks.append((rows, path, frontend.to_dict(), label_names, speed, include_waveform, trim_db))
    return Plan(out_dir, tasks, records, fp, frontend, label_names, shard_by, tuple(speed_factors), include_waveform,
                trim_db)


def finish_records(plan, results, seconds=0.0):
    """Per-shard statistics, `manifest.jsonl`, `skipped.csv` and, last, `dataset.json` from the
    shard tasks' results (`write_shard`'s, in any order); returns the `RecordSet`."""
    out_dir = plan.out_dir
    by_path = {r["path"]: r for r in results}
    missing = [t[1] for t in plan.tasks if t[1] not in by_path]
    if missing:
        raise RecordError(f"{out_dir}: no result for {len(missing)} shards, e.g. {missing[0]}")
    by_id = {r["utterance_id"]: r for r in plan.records}
    rows_out, skipped, shards = [], [], []
    for task in plan.tasks:
        res = by_path[task[1]]
        shard, speed = os.path.basename(res["path"]), task[4]
        key = str(task[0][0][plan.shard_by])
        FeatureStats.from_dict(res["stats"]).save(os.path.join(out_dir, "stats", shard + ".json"))
        shards.append({"file": shard, "key": key,
                       "speed": speed, "count": len(res["written"]),
                       "frames": int(res["stats"]["count"]), "bytes": res["bytes"], "checksum": res["checksum"]})
        skipped += res["skipped"] if speed == 1.0 else []
        for w in res["written"]:
            base_id = w["utterance_id"] if speed == 1.0 else w["utterance_id"].rsplit("_sp", 1)[0]
            row = dict(by_id[base_id])
            row.update(w, shard=shard)
            rows_out.append(row)
    if not rows_out:
        raise RecordError(f"{out_dir}: no utterance could be written ({len(skipped)} skipped)")
    out = pd.DataFrame(rows_out)
    out["path"] = out["path"].astype(str)
    save_manifest(out, os.path.join(out_dir, "manifest.jsonl"))
    write_csv(pd.DataFrame(skipped, columns=["path", "reason"]), os.path.join(out_dir, "skipped.csv"), index=False)
    meta = {
        "schema_version": SCHEMA_VERSION, "fingerprint": plan.fingerprint, "frontend": plan.frontend.to_dict(),
        "feature_dim": plan.frontend.feature_dim, "label_names": plan.label_names, "shard_by": plan.shard_by,
        "speed_factors": [float(s) for s in plan.speed_factors], "include_waveform": plan.include_waveform,
        "trim_db": plan.trim_db, "num_examples": len(rows_out), "num_skipped": len(skipped), "shards": shards,
        "write_seconds": round(seconds, 3),
    }
    write_json(meta, os.path.join(out_dir, DATASET_FILE))
    remove_stale_tmp(out_dir)  # a stopped writer that was still dying when this one started
    return RecordSet(out_dir)
