"""Every system's data: manifest → records → folds → tf.data pipelines.

    d = load(cfg)                            # manifest (the utterances with records), records,
                                             # and every file left out, with the reason
    folds = fold_list(cfg, labelled(cfg, d.manifest))
    ds = classification_dataset(d.records, cfg, fold.train, targets, shuffle=True, perturbed=True)

This module imports TensorFlow only when a pipeline is built: manifests, records folders and
folds work without it.
"""

import copy
import hashlib
import os

import numpy as np
import pandas as pd

from keras_ser.audio.normalization import FeatureStats
from keras_ser.corpora import load_corpus, synthetic
from keras_ser.errors import ConfigError, CorpusError
from keras_ser.training.protocols import Fold, check_fold, make_folds
from keras_ser.utils import data_home, read_json
from tfrecords_tools import write_records
from tfrecords_tools.writer import fingerprint


# -- manifests ------------------------------------------------------------------------------------
def load_one(cfg, corpus, root, seed=None, skipped=None):
    """One corpus's manifest; the synthetic corpus is generated (or reused) with `data.seed`, or
    `seed` (an unseen synthetic corpus uses another). Files the loader did not use are named,
    and added to the list `skipped` when given (`{"path", "reason"}` dicts)."""
    if corpus == "synthetic":
        seed = cfg.data.seed if seed is None else seed
        root = root or synthetic.default_root(cfg.data.synthetic_size, seed)
        return synthetic.generate(root, size=cfg.data.synthetic_size, seed=seed).manifest
    result = load_corpus(corpus, root)
    if len(result.skipped):  # the loader's list (the record writer's skipped.csv has only unreadable audio)
        print("\n".join([f"{corpus}: {len(result.skipped)} files not used:", *result.skipped_lines()]))
        if skipped is not None:
            skipped += result.skipped[["path", "reason"]].to_dict(orient="records")
    return result.manifest


def load_manifest(cfg, skipped=None):
    """The corpus manifest for `cfg.data` (generating the synthetic corpus when needed); with
    `data.fuse`, the union of the corpora (utterance ids must not collide). The files the
    loaders left out are added to `skipped` when given."""
    parts = [load_one(cfg, cfg.data.corpus, cfg.data.root, skipped=skipped)]
    parts += [load_one(cfg, e["corpus"], e.get("root"), skipped=skipped) for e in cfg.data.fuse]
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


def check_labels(cfg, manifest, what=None):
    """Each of `data.emotions` must occur in the corpus: a misspelt label (`angy`) would train a
    class without examples and score it perfectly. Raises `CorpusError` naming it."""
    have = set(manifest["emotion"].dropna())
    missing = [e for e in cfg.data.emotions if e not in have]
    if missing:
        raise CorpusError(f"data.emotions: {', '.join(map(repr, missing))} does not occur in "
                          f"{what or cfg.data.corpus} (its emotions: {', '.join(sorted(have))})")


class RunData:
    """What a run trains and tests on, and what it left out.

    Attributes:
        corpus: the loaders' manifest (labels checked against `data.emotions`).
        records: the `RecordSet`, written (or reused) on first use.
        manifest: the utterances of `corpus` that have records (folds are made of these, so a
            fold's sizes count what is trained and tested).
        skipped: one dict per utterance or file left out: `stage` (corpus, records, or a
            system's own, e.g. "strength labels"), `path`, `reason`.
    """

    def __init__(self, cfg, corpus, skipped):
        self.cfg, self.corpus, self.skipped = cfg, corpus, list(skipped)
        self._records = self._manifest = None

    @property
    def records(self):
        if self._records is None:
            rs = prepare_records(self.cfg, self.corpus)
            unusable = rs.skipped()
            self.skipped += [{"stage": "records", "path": r["path"], "reason": r["reason"]} for r in unusable]
            present = self.corpus["utterance_id"].isin(set(rs.manifest["utterance_id"]))
            named = {r["path"] for r in unusable}
            self.skipped += [{"stage": "records", "path": p, "reason": "no records"}
                             for p in self.corpus.loc[~present, "path"] if p not in named]
            self._records, self._manifest = rs, self.corpus[present]
            print(f"records: {rs.root} ({len(self._manifest)} utterances)")
        return self._records

    @property
    def manifest(self):
        if self._manifest is None:
            self.records  # noqa: B018 (writes the records, which say what has them)
        return self._manifest

    def skip(self, stage, rows, reason):
        """Leave out the manifest rows `rows` (a DataFrame) for `reason`, said at the end of the run."""
        self.skipped += [{"stage": stage, "path": p, "reason": reason} for p in rows["path"]]

    def summary(self):
        """The skips by stage and reason: `[{"stage", "reason", "count", "example"}]`."""
        groups = {}
        for s in self.skipped:
            g = groups.setdefault((s["stage"], s["reason"]), {"stage": s["stage"], "reason": s["reason"],
                                                               "count": 0, "example": s["path"]})
            g["count"] += 1
        return list(groups.values())


def load(cfg):
    """The run's corpus with its labels checked (`RunData`; records are written on first use)."""
    loader_skips = []
    manifest = load_manifest(cfg, loader_skips)
    check_labels(cfg, manifest)
    return RunData(cfg, manifest, [{"stage": "corpus", **s} for s in loader_skips])


# -- records --------------------------------------------------------------------------------------
def cache_name(corpus, root):
    """A corpus's part of the records folder name; a user's manifest is told apart by its path."""
    if corpus != "manifest":
        return corpus
    stem = os.path.splitext(os.path.basename(root))[0]
    return f"manifest-{stem}-{hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:8]}"


def _shard_by(cfg):
    return "session" if cfg.protocol.name == "loso_session" else "speaker"


def records_dir(cfg, manifest):
    """Where the records of `cfg.data` for `manifest` go (`data.records_dir`, or a cache folder).

    The cache folder is named by what determines its records: the corpora, the frontend, the
    speed factors, and a hash of the manifest's content (each audio file's bytes included),
    the label set and the sharding (`tfrecords_tools.writer.fingerprint`). Runs that differ in
    any of them (another label set, a repaired file) never share, nor rewrite under each other,
    one folder."""
    if cfg.data.records_dir:
        return cfg.data.records_dir
    base = data_home()
    corpora = "+".join(cache_name(e["corpus"], e.get("root"))
                       for e in [{"corpus": cfg.data.corpus, "root": cfg.data.root}, *cfg.data.fuse])
    tag = cfg.data.synthetic_size if "synthetic" in corpora else "full"
    speeds = "".join(f"-sp{float(f):g}" for f in sorted(cfg.data.speed_perturb) if float(f) != 1.0)
    key = fingerprint(manifest, cfg.data.frontend, cfg.data.emotions, _shard_by(cfg), cfg.data.speed_perturb,
                      trim_db=cfg.data.trim_silence)[:12]
    return os.path.join(base, "records", f"{corpora}-{tag}-{cfg.data.frontend}{speeds}-{key}")


# Below this much audio to write (speed-perturbed copies included) the records are written in
# this process: the workers start by importing TensorFlow (about 6 s on this project's 2-core CPU)
# and a frontend runs at about 190x real time here, so two workers only pay off from about half
# an hour of audio (docs/benchmarks.md).
WORKERS_FROM_AUDIO_S = 30 * 60


def record_workers(cfg, manifest):
    """The processes that write `manifest`'s records: `data.num_workers`, or 0 (this process)
    when the audio to write is shorter than `WORKERS_FROM_AUDIO_S` (a manifest without every
    duration gets `data.num_workers`)."""
    durations = pd.to_numeric(manifest["duration"], errors="coerce") if "duration" in manifest else None
    if durations is None or durations.isna().any():
        return cfg.data.num_workers
    copies = 1 + sum(1 for f in cfg.data.speed_perturb if float(f) != 1.0)
    return cfg.data.num_workers if durations.sum() * copies >= WORKERS_FROM_AUDIO_S else 0


def prepare_records(cfg, manifest):
    """Write (or reuse) the records for this config; returns a `RecordSet`."""
    return write_records(manifest, records_dir(cfg, manifest), frontend=cfg.data.frontend,
                         label_names=cfg.data.emotions, shard_by=_shard_by(cfg),
                         speed_factors=tuple(cfg.data.speed_perturb), num_workers=record_workers(cfg, manifest),
                         progress=cfg.train.verbose > 0, trim_db=cfg.data.trim_silence)


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
    checked for leaks, for size (`protocol.min_fold_utterances` in its test set; a smaller
    development set is a warning) and for labels (every one of `data.emotions` in its training set); the first
    `protocol.max_folds`. Raises ConfigError or CorpusError naming the fold."""
    p = cfg.protocol
    if p.folds_file:
        folds = folds_from_file(p.folds_file, utterances)
    else:
        folds = protocol_folds(cfg, utterances)
    group = {"loso": "speaker", "loso_session": "session"}.get(p.name, p.group)
    emotion = utterances.set_index("utterance_id")["emotion"]
    if p.folds_file:
        group = read_json(p.folds_file).get("group")
    for f in folds:
        try:
            check_fold(f, utterances, group)
        except ValueError as e:
            raise CorpusError(f"{p.folds_file or 'protocol ' + p.name}: {e}") from None
        if len(f.test) < p.min_fold_utterances:
            raise CorpusError(f"protocol {p.name} on {cfg.data.corpus}: fold {f.name} has {len(f.test)} test "
                              f"utterance{'s' * (len(f.test) != 1)}, fewer than protocol.min_fold_utterances="
                              f"{p.min_fold_utterances} (a speaker or group with too few utterances: leave it "
                              "out of the manifest, or lower the minimum knowingly)")
        if len(f.dev) < p.min_fold_utterances and cfg.train.select == "best":  # last/average choose nothing on it
            print(f"warning: fold {f.name} has {len(f.dev)} development utterances: early stopping on them is noisy")
        trained = set(emotion.loc[list(f.train)])
        missing = [e for e in cfg.data.emotions if e not in trained]
        if missing:
            raise CorpusError(f"protocol {p.name} on {cfg.data.corpus}: fold {f.name} has no training utterance "
                              f"of {', '.join(map(repr, missing))} (data.emotions)")
    if cfg.data.normalization == "speaker":
        warn_one_emotion_speakers(cfg, utterances, folds)
    return folds[: p.max_folds] if p.max_folds else folds


def protocol_folds(cfg, utterances):
    """The folds of `protocol` (not checked: see `fold_list`)."""
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
    return folds


def folds_to_json(folds, **about):
    """A `folds.json` document: `about` (protocol, corpus, ...) and each fold's utterance ids."""
    return {**about, "folds": [{"name": f.name, "train": list(f.train), "dev": list(f.dev), "test": list(f.test),
                                "dev_from_train": bool(f.dev_from_train)} for f in folds]}


def folds_from_file(path, utterances):
    """The folds of an earlier run's `folds.json`. Every utterance they name must be among
    `utterances` (a `CorpusError` names the first that is not): identical folds or none.
    Utterances in no fold are left out, said."""
    doc = read_json(path)
    folds = [Fold(f["name"], list(f["train"]), list(f["dev"]), list(f["test"]), bool(f.get("dev_from_train")))
             for f in doc.get("folds", [])]
    if not folds:
        raise CorpusError(f"protocol.folds_file {path}: no folds")
    known = set(utterances["utterance_id"])
    named = [u for f in folds for part in (f.train, f.dev, f.test) for u in part]
    missing = [u for u in named if u not in known]
    if missing:
        raise CorpusError(f"protocol.folds_file {path}: {len(missing)} of its utterances are not in this run's corpus "
                          f"(e.g. {missing[0]!r}): the folds would not be identical")
    unused = len(known - set(named))
    if unused:
        print(f"protocol.folds_file {path}: {unused} utterances of this run's corpus are in none of its folds")
    return folds


def warn_one_emotion_speakers(cfg, utterances, folds):
    """With per-speaker normalisation, warn when most training speakers are heard mostly in one
    emotion: their statistics then hold the emotion, and subtracting them removes it."""
    emo = utterances[utterances["emotion"].isin(cfg.data.emotions)]
    for f in folds:
        train = emo[emo["utterance_id"].isin(set(f.train))]
        share = train.groupby("speaker")["emotion"].agg(lambda e: e.value_counts().iloc[0] / len(e))
        if len(share) and (share > 0.5).mean() > 0.5:
            print(f"warning: data.normalization=speaker, but {int((share > 0.5).sum())} of {len(share)} training "
                  f"speakers of fold {f.name} have most of their utterances in one emotion: per-speaker statistics "
                  "then hold the emotion, and normalising by them removes it (use data.normalization=train)")
            return True
    return False


def fold_shards(rs, ids):
    """Shard files holding the utterances `ids`."""
    man = rs.manifest
    shards = sorted(set(man.loc[man["utterance_id"].isin(set(ids)), "shard"]))
    return [os.path.join(rs.root, "shards", s) for s in shards]


# -- normalisation ----------------------------------------------------------------------------------
def identity_stats(dim):
    """`FeatureStats` of mean 0 and standard deviation 1: the model's own normalisation is then
    the identity (features come normalised from the pipeline: `normalizer`)."""
    return FeatureStats(1, np.zeros(dim), np.ones(dim))


def training_stats(rs, cfg, ids):
    """The statistics a model normalises its input with: the training utterances' (`ids`; their
    shards') with `data.normalization: train`, else the identity (see `normalizer`)."""
    if cfg.data.normalization != "train":
        return identity_stats(rs.feature_dim)
    return rs.feature_stats(fold_shards(rs, ids))


def speaker_statistics(rs):
    """`{speaker: FeatureStats}` over each speaker's own original (not speed-perturbed) audio,
    labels unused: the records' per-shard statistics when the shards are speakers, else one
    pass over the records."""
    if rs.meta["shard_by"] == "speaker":
        return {s["key"]: FeatureStats.load(os.path.join(rs.root, "stats", s["file"] + ".json"))
                for s in rs.meta["shards"] if s["speed"] == 1.0}
    speaker_of = dict(zip(rs.manifest["utterance_id"], rs.manifest["speaker"].astype(str)))
    stats = {}
    for ex in rs.dataset(rs.files(), batch_size=None):
        s = speaker_of[ex["utterance_id"].numpy().decode()]
        stats.setdefault(s, FeatureStats.zeros(rs.feature_dim)).update(ex["features"].numpy()[: int(ex["num_frames"])])
    return stats


def normalizer(cfg, rs):
    """The per-example map (parsed record → record) of `data.normalization`, or None ("train":
    the model normalises with the training statistics). "speaker": each utterance, and each of
    its speed-perturbed copies, by its speaker's statistics (`speaker_statistics`); "utterance":
    by its own frames' mean and standard deviation."""
    import tensorflow as tf

    mode = cfg.data.normalization
    if mode == "train":
        return None
    if mode == "utterance":
        def by_utterance(ex):
            f = ex["features"]
            mean = tf.reduce_mean(f, 0, keepdims=True)
            sd = tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(f - mean), 0, keepdims=True), 1e-6))
            return dict(ex, features=(f - mean) / sd)

        return by_utterance
    return _by_group(rs, speaker_statistics(rs), "speaker")


def corpus_statistics(rs):
    """`FeatureStats` of a whole record set's original (not speed-perturbed) audio."""
    return FeatureStats.merge_all(FeatureStats.load(os.path.join(rs.root, "stats", s["file"] + ".json"))
                                  for s in rs.meta["shards"] if s["speed"] == 1.0)


def _by_group(rs, stats, column, target=None):
    """Per-example map standardising each utterance by the statistics of its group (`stats`:
    group → FeatureStats; `column` of the records' manifest names an utterance's group, None:
    one group for all), then, with `target` (a FeatureStats), scaling into its space."""
    import tensorflow as tf

    names = sorted(stats)
    means = tf.constant(np.stack([stats[s].mean for s in names]), tf.float32)
    stds = tf.constant(np.stack([stats[s].std(1e-3) for s in names]), tf.float32)
    index = {s: i for i, s in enumerate(names)}
    man = rs.manifest
    groups = man[column].astype(str) if column else [names[0]] * len(man)
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(man["utterance_id"].tolist()), tf.constant([index[str(g)] for g in groups], tf.int64)), -1)
    scale = shift = None
    if target is not None:
        scale = tf.constant(target.std(), tf.float32)
        shift = tf.constant(target.mean, tf.float32)

    def by_group(ex):
        i = table.lookup(ex["utterance_id"])
        f = (ex["features"] - means[i]) / stds[i]
        return dict(ex, features=f if target is None else f * scale + shift)

    return by_group


def eval_normalizer(cfg, rs, train_stats):
    """The per-example map for an unseen corpus's records (`data.eval_normalization`). With
    speaker or utterance normalisation in training, the same on the unseen corpus's own speakers
    and utterances. With training-split normalisation: "train" none (the model's own training
    statistics); "corpus" or "speaker": standardised with the unseen corpus's (each of its
    speakers') own statistics, labels unused, then scaled into the training statistics'
    space, which the model's own normalisation then removes."""
    if cfg.data.normalization != "train":
        return normalizer(cfg, rs)
    mode = cfg.data.eval_normalization or "train"
    if mode == "train":
        return None
    if mode == "corpus":
        return _by_group(rs, {"corpus": corpus_statistics(rs)}, None, train_stats)
    return _by_group(rs, speaker_statistics(rs), "speaker", train_stats)


class Unseen:
    """A corpus of `data.eval_corpora`, scored but never trained on.

    Attributes:
        name: its name in metrics.json (`unseen/<name>`).
        corpus: every utterance its loader gave (records are written for all of them, so its
            speakers' statistics use all of their audio).
        scored: the utterances the model is run on, whatever their label (none, or one the model
            does not know): every one with records (all of `corpus` without records).
        manifest: those of `scored` whose emotion the model knows (`data.emotions`): the ones
            its metrics count.
        missing: the labels of `data.emotions` it lacks (reported, never guessed).
        other: `{emotion: count}` of its utterances in no class of the model ("none": unlabelled;
            predicted, left out of the metrics).
        records: its `RecordSet` (the run's frontend, no speed perturbation), written on first use
            (`with_records=False`: none, for a system that reads the audio itself).
    """

    def __init__(self, cfg, entry, with_records=True):
        self.name, self.corpus, self.config = eval_corpus(cfg, entry)
        emotions = self.corpus["emotion"].fillna("none")
        self.missing = [e for e in cfg.data.emotions if e not in set(emotions)]
        self.other = {str(k): int(v) for k, v in emotions[~emotions.isin(cfg.data.emotions)].value_counts().items()}
        if len(self.missing) == len(cfg.data.emotions):
            print(f"warning: data.eval_corpora: {self.name} has none of the model's labels "
                  f"({', '.join(cfg.data.emotions)}; its own: {', '.join(sorted(self.other))}): its utterances are "
                  f"predicted (unseen/{self.name}/predictions.csv), not scored")
        self.with_records = with_records
        self._records = None

    @property
    def records(self):
        if self._records is None:
            self._records = prepare_records(self.config, self.corpus)
        return self._records

    @property
    def scored(self):
        if not self.with_records:  # a system that reads the audio itself (the functionals)
            return self.corpus
        return self.corpus[self.corpus["utterance_id"].isin(set(self.records.manifest["utterance_id"]))]

    @property
    def manifest(self):
        m = self.scored
        return m[m["emotion"].isin(self.config.data.emotions)]

    def about(self):
        """What metrics.json says of the corpus beside its scores."""
        return {"missing_labels": self.missing, "left_out": self.other}


# -- pipelines ------------------------------------------------------------------------------------
def make_dataset(rs, cfg, ids, columns, to_xy, shuffle=False, perturbed=False, perturbed_columns=None,
                 positions=False, normalize="default"):
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
        positions: bool. Add each example's position in `ids` to its targets (`y["position"]`,
            evaluation only: the pipeline reads shards and length buckets, not `ids`, in order).
        normalize: the per-example normalisation map: "default" (`normalizer(cfg, rs)`), None,
            or a function (an unseen corpus's `eval_normalizer`).
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
    if positions:
        columns = dict(columns, position=np.arange(len(ids), dtype=np.float32))
        inner = to_xy

        def to_xy(b, rows):
            x, y, sw = inner(b, {k: v for k, v in rows.items() if k != "position"})
            return x, {**y, "position": rows["position"]}, sw
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(rows, tf.int64)), -1)
    consts = {k: tf.constant(np.asarray(v, np.float32)) for k, v in columns.items()}

    def keep(ex):
        return table.lookup(ex["utterance_id"]) >= 0

    def map_batch(b):
        row = table.lookup(b["utterance_id"])
        return to_xy(b, {k: tf.gather(v, row) for k, v in consts.items()})

    ds = rs.dataset(files, batch_size=cfg.train.batch_size, shuffle=shuffle, seed=cfg.seed,
                    max_frames=cfg.data.max_frames if shuffle else None, filter_fn=keep, autotune=cfg.data.autotune,
                    map_fn=normalizer(cfg, rs) if normalize == "default" else normalize)
    return ds.map(map_batch, num_parallel_calls=tf.data.AUTOTUNE)


def mix_batches(ds, alpha):
    """mixup (Zhang et al. 2018) of a batched `(x, y, sample_weight)` dataset: each batch with a
    shuffled copy of itself, by one Beta(alpha, alpha) weight: float inputs, targets and weights
    mixed, `num_frames` the longer of the two (the padded batch holds both); other integer
    inputs (words) cannot be mixed and are an error."""
    import tensorflow as tf

    def mix(x, y, sw):
        b = tf.shape(next(iter(y.values())))[0]
        g1, g2 = tf.random.gamma([], alpha), tf.random.gamma([], alpha)
        lam = g1 / (g1 + g2)
        perm = tf.random.shuffle(tf.range(b))

        def blend(v):
            return lam * v + (1.0 - lam) * tf.gather(v, perm)

        out = {}
        for k, v in x.items():
            if v.dtype.is_floating:
                out[k] = blend(v)
            elif k == "num_frames":
                out[k] = tf.maximum(v, tf.gather(v, perm))
            else:
                raise ValueError(f"train.mixup: input {k!r} cannot be mixed")
        return out, {k: blend(v) for k, v in y.items()}, {k: blend(v) for k, v in sw.items()}

    return ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def _emotion_xy(b, rows):
    return ({"features": b["features"], "num_frames": b["num_frames"]},
            {"emotion": rows["targets"]}, {"emotion": rows["weights"]})


def classification_dataset(rs, cfg, ids, targets, weights=None, shuffle=False, perturbed=False, positions=False,
                           normalize="default"):
    """Batches `({"features", "num_frames"}, {"emotion": targets}, {"emotion": weights})` of
    `ids`; `targets` `(len(ids), K)` and `weights` `(len(ids),)` (ones when None) by row;
    training batches (`shuffle`) mixed with `train.mixup`."""
    w = np.ones(len(ids), np.float32) if weights is None else weights
    ds = make_dataset(rs, cfg, ids, {"targets": targets, "weights": w}, _emotion_xy, shuffle, perturbed,
                      positions=positions, normalize=normalize)
    return mix_batches(ds, cfg.train.mixup) if shuffle and cfg.train.mixup else ds
