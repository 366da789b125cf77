"""Every system's data: manifest → records → folds → tf.data pipelines.

    manifest = load_manifest(cfg)            # the corpus (and `data.fuse`), synthetic generated
    rs = prepare_records(cfg, manifest)      # cached, sharded TFRecords (a `RecordSet`)
    folds = fold_list(cfg, labelled(cfg, manifest))
    ds = classification_dataset(rs, cfg, fold.train, targets, shuffle=True, perturbed=True)

This module imports TensorFlow only when a pipeline is built: manifests, records folders and
folds work without it.
"""

import copy
import hashlib
import os

import numpy as np
import pandas as pd

from keras_ser.corpora import load_corpus, synthetic
from keras_ser.errors import ConfigError, CorpusError
from keras_ser.training.protocols import check_fold, make_folds
from tfrecords_tools import write_records


# -- manifests ------------------------------------------------------------------------------------
def load_one(cfg, corpus, root, seed=None):
    """One corpus's manifest; the synthetic corpus is generated (or reused) with `data.seed`, or
    `seed` (an unseen synthetic corpus uses another). Files the loader did not use are named."""
    if corpus == "synthetic":
        seed = cfg.data.seed if seed is None else seed
        root = root or synthetic.default_root(cfg.data.synthetic_size, seed)
        return synthetic.generate(root, size=cfg.data.synthetic_size, seed=seed).manifest
    result = load_corpus(corpus, root)
    if len(result.skipped):  # the loader's list (the record writer's skipped.csv has only unreadable audio)
        print("\n".join([f"{corpus}: {len(result.skipped)} files not used:", *result.skipped_lines()]))
    return result.manifest


def load_manifest(cfg):
    """The corpus manifest for `cfg.data` (generating the synthetic corpus when needed); with
    `data.fuse`, the union of the corpora (utterance ids must not collide)."""
    parts = [load_one(cfg, cfg.data.corpus, cfg.data.root)]
    parts += [load_one(cfg, e["corpus"], e.get("root")) for e in cfg.data.fuse]
    if len(parts) == 1:
        return parts[0]
    manifest = pd.concat(parts, ignore_index=True)
    dup = manifest["utterance_id"].duplicated()
    if dup.any():
        raise CorpusError(f"data.fuse: utterance id {manifest['utterance_id'][dup].iloc[0]!r} occurs in two corpora")
    return manifest


def labelled(cfg, manifest):
    """The rows of `manifest` whose emotion is one of `data.emotions`."""
    return manifest[manifest["emotion"].isin(cfg.data.emotions)]


# -- records --------------------------------------------------------------------------------------
def cache_name(corpus, root):
    """A corpus's part of the records folder name; a user's manifest is told apart by its path."""
    if corpus != "manifest":
        return corpus
    stem = os.path.splitext(os.path.basename(root))[0]
    return f"manifest-{stem}-{hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:8]}"


def records_dir(cfg):
    """Where the records of `cfg.data` go (`data.records_dir`, or a cache folder).

    The cache folder's name holds the speed-perturbation factors: the writer rewrites a folder
    whose records differ from what is asked, so runs with and without copies (possibly at the
    same time) must not share one."""
    if cfg.data.records_dir:
        return cfg.data.records_dir
    base = os.path.dirname(os.path.dirname(synthetic.default_root()))
    corpora = "+".join(cache_name(e["corpus"], e.get("root"))
                       for e in [{"corpus": cfg.data.corpus, "root": cfg.data.root}, *cfg.data.fuse])
    tag = cfg.data.synthetic_size if "synthetic" in corpora else "full"
    speeds = "".join(f"-sp{float(f):g}" for f in sorted(cfg.data.speed_perturb) if float(f) != 1.0)
    return os.path.join(base, "records", f"{corpora}-{tag}-seed{cfg.data.seed}-{cfg.data.frontend}{speeds}")


def prepare_records(cfg, manifest):
    """Write (or reuse) the records for this config; returns a `RecordSet`."""
    shard_by = "session" if cfg.protocol.name == "loso_session" else "speaker"
    return write_records(manifest, records_dir(cfg), frontend=cfg.data.frontend, label_names=cfg.data.emotions,
                         shard_by=shard_by, speed_factors=tuple(cfg.data.speed_perturb),
                         num_workers=cfg.data.num_workers, progress=cfg.train.verbose > 0)


def with_records(manifest, rs):
    """The manifest less the utterances the record writer skipped (unreadable audio; listed in
    skipped.csv in the records folder), saying how many."""
    present = manifest["utterance_id"].isin(set(rs.manifest["utterance_id"]))
    if not present.all():
        print(f"{int((~present).sum())} utterances have no records and are left out")
    return manifest[present]


def eval_records_config(cfg, corpus, root=None):
    """The config for an unseen corpus's records: the run's frontend, no speed perturbation, a
    folder of its own (beside `data.records_dir` when that is set)."""
    c = copy.deepcopy(cfg)
    c.data.corpus, c.data.root, c.data.fuse, c.data.speed_perturb = corpus, root, [], []
    c.data.records_dir = (os.path.join(os.path.dirname(cfg.data.records_dir.rstrip("/")),
                                       f"eval-{cache_name(corpus, root)}")
                          if cfg.data.records_dir else None)
    return c


def eval_corpus(cfg, entry):
    """An unseen corpus of `data.eval_corpora`: `(name, manifest, config for its records)`.

    The synthetic corpus is generated with `data.seed + 1`, so that its speakers and sentences
    are not the training corpus's. A user's manifest is named by the corpora in its corpus
    column."""
    corpus, root = entry["corpus"], entry.get("root")
    manifest = load_one(cfg, corpus, root, seed=cfg.data.seed + 1 if corpus == "synthetic" else None)
    name = "+".join(sorted(manifest["corpus"].unique())) if corpus == "manifest" else corpus
    return name, manifest, eval_records_config(cfg, corpus, root)


# -- folds ----------------------------------------------------------------------------------------
def fold_list(cfg, utterances):
    """The protocol's folds over the rows of `utterances` (a manifest; each system chooses which
    rows its folds hold: MLEE every utterance, the others those of `data.emotions`), each
    checked for leaks; the first `protocol.max_folds`."""
    p = cfg.protocol
    try:
        if p.name == "split":
            folds = make_folds(utterances, "split", fractions=tuple(p.fractions), seed=p.seed, group=p.group)
        elif p.name == "kfold":
            folds = make_folds(utterances, "kfold", k=p.k, seed=p.seed, group=p.group)
        else:
            folds = make_folds(utterances, p.name, dev=p.dev)
    except ValueError as e:  # too few speakers/utterances for the protocol: a config problem
        raise ConfigError(f"protocol {p.name} on {cfg.data.corpus}: {e}") from None
    group = {"loso": "speaker", "loso_session": "session"}.get(p.name, p.group)
    for f in folds:
        check_fold(f, utterances, group)
    return folds[: p.max_folds] if p.max_folds else folds


def fold_shards(rs, ids):
    """Shard files holding the utterances `ids`."""
    man = rs.manifest
    shards = sorted(set(man.loc[man["utterance_id"].isin(set(ids)), "shard"]))
    return [os.path.join(rs.root, "shards", s) for s in shards]


# -- pipelines ------------------------------------------------------------------------------------
def make_dataset(rs, cfg, ids, columns, to_xy, shuffle=False, perturbed=False, perturbed_columns=None):
    """tf.data pipeline over the utterances `ids`, with per-utterance values looked up by id.

    Args:
        rs: RecordSet.
        cfg: RunConfig.
        ids: utterance ids to keep.
        columns: dict name → array with one row per id (targets, weights, ...): looked up in the
            graph through a hash table from utterance id (and speed-perturbed copy id) to row.
        to_xy: function `(batch, rows) → (x, y, sample_weight)`; `batch` is the parsed record
            batch, `rows` maps each column name to its gathered `(batch, ...)` values.
        shuffle: bool. Shuffle, and crop to `data.max_frames` (training).
        perturbed: bool. Also read the speed-perturbed copies of `ids` (training).
        perturbed_columns: optional function `factor → columns` giving the copies' own values
            (the same names, one row per id), for values that a speed change moves, such as
            word timings; by default a copy looks up its original's row.
    """
    import tensorflow as tf

    ids = list(ids)
    if not ids:
        raise ValueError("make_dataset: no utterances")
    files = fold_shards(rs, ids)
    keys, rows = list(ids), list(range(len(ids)))
    if perturbed and cfg.data.speed_perturb:
        shard_keys = {s["key"] for s in rs.meta["shards"] if os.path.join(rs.root, "shards", s["file"]) in files}
        files = rs.files(keys=shard_keys, with_perturbed=True)
        blocks = [columns]
        for factor in cfg.data.speed_perturb:
            keys += [f"{u}_sp{factor:g}" for u in ids]
            if perturbed_columns is None:
                rows += list(range(len(ids)))
            else:
                rows += list(range(len(ids) * len(blocks), len(ids) * (len(blocks) + 1)))
                blocks.append(perturbed_columns(factor))
        if perturbed_columns is not None:
            columns = {k: np.concatenate([np.asarray(b[k]) for b in blocks]) for k in columns}
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(rows, tf.int64)), -1)
    consts = {k: tf.constant(np.asarray(v, np.float32)) for k, v in columns.items()}

    def keep(ex):
        return table.lookup(ex["utterance_id"]) >= 0

    def map_batch(b):
        row = table.lookup(b["utterance_id"])
        return to_xy(b, {k: tf.gather(v, row) for k, v in consts.items()})

    ds = rs.dataset(files, batch_size=cfg.train.batch_size, shuffle=shuffle, seed=cfg.seed,
                    max_frames=cfg.data.max_frames if shuffle else None, filter_fn=keep, autotune=cfg.data.autotune)
    return ds.map(map_batch, num_parallel_calls=tf.data.AUTOTUNE)


def _emotion_xy(b, rows):
    return ({"features": b["features"], "num_frames": b["num_frames"]},
            {"emotion": rows["targets"]}, {"emotion": rows["weights"]})


def classification_dataset(rs, cfg, ids, targets, weights=None, shuffle=False, perturbed=False):
    """Batches `({"features", "num_frames"}, {"emotion": targets}, {"emotion": weights})` of
    `ids`; `targets` `(len(ids), K)` and `weights` `(len(ids),)` (ones when None) by row."""
    w = np.ones(len(ids), np.float32) if weights is None else weights
    return make_dataset(rs, cfg, ids, {"targets": targets, "weights": w}, _emotion_xy, shuffle, perturbed)
