"""EPR runs: segments in tf.data, the refinery's stages with out-of-fold labels, the forest.

For each outer fold (10-fold CV, or a speaker-independent protocol):

    stage 1      every training segment's target is its utterance's one-hot label (C1)
    stage t > 1  targets are `refine_labels(epr.refinery, profile_{t-1}, label)`
    per stage    `epr.inner_folds` networks, network j trained on the training utterances outside
                 inner fold j, give the profiles of inner fold j (out of fold: the profile, and
                 so the next stage's label, of a training segment never comes from a network
                 that saw it); one more network on all training utterances gives the
                 development and test profiles; early stopping measures the development
                 segments against their utterance labels (`epr.dev_labels`)
    decision     a random forest on `profile_statistics` of the training (out-of-fold) and
                 development profiles, applied to the test profiles; also the network's own
                 decision (argmax of the mean segment posterior), per stage

Beside the shared run folder (see `keras_ser.training.loop`):

    folds/<fold>/stage<t>/inner<j>/, full/   each network: best.keras, state.json, history.csv, backup/, done
    folds/<fold>/stage<t>/profiles.npz       every utterance's profile at stage t (atomic)
    folds/<fold>/best.keras                  the utterance model (final network + forest)
    folds/<fold>/metrics.json                per-stage metrics (a finished fold is skipped)
"""

import dataclasses
import os
import warnings

import keras
import numpy as np
import tensorflow as tf
from sklearn.ensemble import RandomForestClassifier

from keras_ser.audio.frontends import get_frontend_config
from keras_ser.audio.normalization import FeatureStats
from keras_ser.errors import ConfigError
from keras_ser.labels.emotion_targets import class_weights
from keras_ser.labels.profiles import refine_labels, statistic_names, statistics_matrix
from keras_ser.layers.segments import frame_segments, segment_count
from keras_ser.models.epr import build_epr_model, build_vgg
from keras_ser.training import data, loop
from keras_ser.training import metrics as M
from keras_ser.training.protocols import stratified_assignment
from keras_ser.training.registry import System, register
from keras_ser.utils import atomic_path


@dataclasses.dataclass
class SegmentTable:
    """Segment targets of a set of utterances: `counts[i]` rows of `labels` belong to `ids[i]`."""

    ids: list
    counts: np.ndarray
    labels: np.ndarray
    weights: np.ndarray

    @property
    def offsets(self):
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    def without(self, ids):
        """The table less the utterances `ids`."""
        drop = set(ids)
        keep = np.array([u not in drop for u in self.ids])
        rows = np.repeat(keep, self.counts)
        return SegmentTable([u for u, k in zip(self.ids, keep) if k], self.counts[keep], self.labels[rows],
                            self.weights[keep])


def pad_value(rs, cfg=None):
    """Feature value of silence: the frontend's log floor (or 0 without a log); with speaker or
    utterance normalisation in the pipeline, 0 (the mean)."""
    if cfg is not None and cfg.data.normalization != "train":
        return 0.0
    f = get_frontend_config(rs.frontend)
    return float(np.log(f.log_offset)) if f.log else 0.0


def segment_counts(cfg, rs, ids):
    n = rs.manifest.set_index("utterance_id").loc[list(ids), "num_frames"].to_numpy()
    return segment_count(n, cfg.epr.segment_frames, cfg.epr.segment_hop)


def _utterance_dataset(rs, cfg, ids, shuffle=False, normalize="default"):
    """Single parsed examples of `ids` and the id → row lookup table."""
    ids = list(ids)
    if not ids:
        raise ValueError("EPR: no utterances")
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(ids), tf.range(len(ids), dtype=tf.int64)), -1)
    ds = rs.dataset(data.fold_shards(rs, ids), batch_size=None, shuffle=shuffle, seed=cfg.seed,
                    filter_fn=lambda ex: table.lookup(ex["utterance_id"]) >= 0, autotune=cfg.data.autotune,
                    map_fn=data.normalizer(cfg, rs) if normalize == "default" else normalize)
    return ds, table


def _segments(cfg, pad, ex):
    seg, n = frame_segments(ex["features"][None], ex["num_frames"][None], cfg.epr.segment_frames,
                            cfg.epr.segment_hop, pad)
    return seg[0, : n[0]], n[0]


def segment_dataset(rs, cfg, table, shuffle=False):
    """Batches `({"segments"}, {"emotion": targets}, {"emotion": weights})` of `table`'s utterances.

    Segments are cut in the pipeline (nothing is written to disk); training shuffles utterances,
    then segments in a buffer of `epr.shuffle_buffer`, and drops the last partial batch. A segment count that differs from the
    table's (records and labels out of step) fails the pipeline with a message.
    """
    ds, lookup = _utterance_dataset(rs, cfg, table.ids, shuffle)
    flat = tf.constant(table.labels, tf.float32)
    offsets = tf.constant(table.offsets, tf.int64)
    counts = tf.constant(np.asarray(table.counts, np.int32))
    weights = tf.constant(np.asarray(table.weights, np.float32))
    pad = pad_value(rs, cfg)

    def to_xy(ex):
        seg, n = _segments(cfg, pad, ex)
        row = lookup.lookup(ex["utterance_id"])
        check = tf.debugging.assert_equal(n, counts[row], message="EPR: segment count differs from the label table")
        with tf.control_dependencies([check]):
            idx = offsets[row] + tf.range(tf.cast(n, tf.int64))
        return {"segments": seg}, {"emotion": tf.gather(flat, idx)}, {"emotion": tf.fill([n], weights[row])}

    ds = ds.map(to_xy, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if shuffle:
        ds = ds.shuffle(cfg.epr.shuffle_buffer, seed=cfg.seed, reshuffle_each_iteration=True)
    # Training drops the last partial batch (one traced step shape per network, not two).
    drop = shuffle and int(np.sum(table.counts)) >= 2 * cfg.train.batch_size
    ds = ds.batch(cfg.train.batch_size, drop_remainder=drop)
    if shuffle and cfg.train.mixup:
        ds = data.mix_batches(ds, cfg.train.mixup)
    return ds.prefetch(tf.data.AUTOTUNE)


def predict_profiles(model, rs, cfg, ids, batch_size=512, normalize="default"):
    """Each utterance's profile `(segments, K)` under `model` (a segment classifier, or a
    `SegmentClassifier`), in the order of `ids`."""
    ids = list(ids)
    ds, lookup = _utterance_dataset(rs, cfg, ids, normalize=normalize)
    pad = pad_value(rs, cfg)

    def to_x(ex):
        seg, n = _segments(cfg, pad, ex)
        return {"segments": seg}, tf.fill([n], lookup.lookup(ex["utterance_id"]))

    ds = ds.map(to_x, num_parallel_calls=tf.data.AUTOTUNE).unbatch().batch(batch_size).prefetch(tf.data.AUTOTUNE)
    infer = model.infer if isinstance(model, SegmentClassifier) else tf.function(
        lambda x: model(x, training=False)["emotion"], reduce_retracing=True)
    posts, rows = [], []
    for x, r in ds:
        posts.append(np.asarray(infer(x), np.float32))
        rows.append(r.numpy())
    posts, rows = np.concatenate(posts), np.concatenate(rows)
    order = np.argsort(rows, kind="stable")  # the stream keeps each utterance's segments in order
    parts = np.split(posts[order], np.cumsum(np.bincount(rows, minlength=len(ids)))[:-1])
    missing = [ids[i] for i, p in enumerate(parts) if len(p) == 0]
    if missing:
        raise RuntimeError(f"EPR: no segments read for {len(missing)} utterances, e.g. {missing[0]!r}")
    return parts


def utterance_stats(rs, cfg, ids):
    """Feature statistics of exactly the utterances `ids` (k-fold shards also hold test speakers);
    the identity with speaker or utterance normalisation (the pipeline normalises)."""
    if cfg.data.normalization != "train":
        return data.identity_stats(rs.feature_dim)
    ds, _ = _utterance_dataset(rs, cfg, ids)
    stats = FeatureStats.zeros(rs.feature_dim)
    for ex in ds:
        stats.update(ex["features"].numpy()[: int(ex["num_frames"])])
    return stats


def inner_split(ids, labels, k, seed):
    """`k` stratified held-out parts of the training utterances (the inner folds)."""
    if len(ids) < k:
        raise ValueError(f"epr.inner_folds={k}: only {len(ids)} training utterances")
    assign = stratified_assignment(np.asarray(labels), k, np.random.default_rng(seed))
    return [[u for u, a in zip(ids, assign) if a == j] for j in range(k)]


def make_table(cfg, rs, ids, labels_of, profiles, class_w, num_classes):
    """The `SegmentTable` of stage t: one-hot labels (stage 1, `profiles` None) or refined ones."""
    ids = list(ids)
    counts = segment_counts(cfg, rs, ids)
    parts = []
    for u, n in zip(ids, counts):
        if profiles is None:
            parts.append(np.repeat(np.eye(num_classes, dtype=np.float32)[labels_of[u]][None], n, 0))
        else:
            if len(profiles[u]) != n:
                raise RuntimeError(f"EPR: {u}: profile has {len(profiles[u])} segments, records give {n}")
            parts.append(refine_labels(cfg.epr.refinery, profiles[u], labels_of[u], num_classes))
    w = np.ones(len(ids), np.float32) if class_w is None else np.asarray(
        [class_w[labels_of[u]] for u in ids], np.float32)
    return SegmentTable(ids, counts, np.concatenate(parts), w)


def build_model(cfg, rs, stats):
    return build_vgg(len(rs.label_names), cfg.epr.segment_frames, rs.feature_dim, stats.mean, stats.std(),
                     **cfg.model.params)


class SegmentClassifier:
    """The segment classifier of one outer fold, built and traced once, re-initialised for each
    of the fold's networks (every network starts from the same seeded initial weights, as a
    fresh build with `cfg.seed` would, and a zeroed Adam): a VGG's training step takes seconds
    to trace, and a fold trains `stages * (inner_folds + 1)` networks."""

    def __init__(self, cfg, rs, stats):
        self.cfg = cfg
        keras.utils.set_random_seed(cfg.seed)
        with loop.strategy(cfg.train.strategy).scope():
            self.model = build_model(cfg, rs, stats)
            self.model.compile(optimizer=loop.make_optimizer(cfg, cfg.train.learning_rate),
                               loss={"emotion": keras.losses.CategoricalCrossentropy()},
                               metrics={"emotion": [keras.metrics.CategoricalAccuracy(name="acc")]},
                               jit_compile=cfg.train.jit_compile)
        self.initial = self.model.get_weights()
        self.infer = tf.function(lambda x: self.model(x, training=False)["emotion"], reduce_retracing=True)

    def reset(self):
        self.model.set_weights(self.initial)
        opt = self.model.optimizer
        if opt.built:
            for v in opt.variables:
                v.assign(self.cfg.train.learning_rate if v.path.endswith("learning_rate") else 0 * v)

    def train(self, rs, train_table, dev_table, net_dir, callbacks=()):
        """Train one network (or reload a finished one) with the paper's schedule; returns self
        holding its best weights."""
        cfg = self.cfg
        if loop.finished_stage(cfg, net_dir):
            with warnings.catch_warnings():  # a finished network only predicts: its optimizer state is not needed
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                self.model.load_weights(os.path.join(net_dir, "best.keras"))
            return self
        self.reset()
        schedule = ()
        if cfg.train.schedule == "constant":  # the paper's decay; a cosine schedule replaces it
            lr, decay, every = cfg.train.learning_rate, cfg.epr.lr_decay, cfg.epr.lr_decay_epochs
            schedule = (keras.callbacks.LearningRateScheduler(lambda epoch: lr * decay ** (epoch // every)),)
        dev = segment_dataset(rs, cfg, dev_table) if dev_table is not None else None
        loop.fit(self.model, segment_dataset(rs, cfg, train_table, shuffle=True), dev,
                 net_dir, cfg, (*schedule, *callbacks), reload=False)
        return self


def save_profiles(path, profiles):
    ids = sorted(profiles)
    with atomic_path(path, keep_suffix=True) as tmp:
        np.savez(tmp, ids=np.array(ids), counts=np.array([len(profiles[u]) for u in ids]),
                 profiles=np.concatenate([profiles[u] for u in ids]))


def load_profiles(path):
    with np.load(path) as z:
        ids, counts, flat = z["ids"].tolist(), z["counts"], z["profiles"]
    return dict(zip(ids, np.split(flat, np.cumsum(counts)[:-1])))


def make_forest(cfg):
    """An unfitted forest as every EPR run builds it: scikit-learn's defaults, `random_state =
    seed`, then `epr.forest`."""
    return RandomForestClassifier(**{"random_state": cfg.seed, **cfg.epr.forest})


def fit_forest(cfg, profiles, ids, labels_of):
    forest = make_forest(cfg)
    forest.fit(statistics_matrix([profiles[u] for u in ids], cfg.epr.percentiles), [labels_of[u] for u in ids])
    return forest


def forest_probabilities(forest, X, num_classes):
    p = np.zeros((len(X), num_classes))
    p[:, forest.classes_.astype(int)] = forest.predict_proba(X)
    return p


def network_decisions(profiles):
    """The network's utterance decisions: the argmax of each profile's mean posterior."""
    return np.array([p.mean(0).argmax() for p in profiles])


def stage_metrics(cfg, profiles, fold, labels_of, label_names):
    """Test metrics of one stage's profiles (segments, the network's decision, the forest's), the forest,
    and its test probabilities `(len(fold.test), K)`."""
    k = len(label_names)
    y = np.array([labels_of[u] for u in fold.test])
    test = [profiles[u] for u in fold.test]
    seg_pred = np.concatenate([p.argmax(1) for p in test])
    seg_true = np.concatenate([np.full(len(p), lab) for p, lab in zip(test, y)])
    mean_pred = network_decisions(test)
    forest = fit_forest(cfg, profiles, list(fold.train) + list(fold.dev), labels_of)
    probs = forest_probabilities(forest, statistics_matrix(test, cfg.epr.percentiles), k)
    return {"segment_wa": M.weighted_accuracy(seg_true, seg_pred), "segments_test": int(len(seg_true)),
            "network": M.classification_metrics(y, mean_pred, label_names),
            "forest": M.classification_metrics(y, probs.argmax(1), label_names)}, forest, probs


def run_fold(cfg, rs, fold, fold_dir, labels_of, label_names, callbacks=()):
    """The refinery on one outer fold; returns (per-stage metrics, final network, final forest)."""
    k = len(label_names)
    stats = utterance_stats(rs, cfg, fold.train)
    class_w = None
    if cfg.train.class_weights:
        class_w = class_weights(np.eye(k)[[labels_of[u] for u in fold.train]], "hard")
    inner = inner_split(fold.train, [labels_of[u] for u in fold.train], cfg.epr.inner_folds, cfg.seed)
    net = SegmentClassifier(cfg, rs, stats)
    profiles, stages = None, []
    for t in range(1, cfg.epr.stages + 1):
        stage_dir = os.path.join(fold_dir, f"stage{t}")
        os.makedirs(stage_dir, exist_ok=True)
        path = os.path.join(stage_dir, "profiles.npz")
        if cfg.train.resume and os.path.exists(path):
            new = load_profiles(path)
        else:
            what = "one-hot utterance labels" if t == 1 else f"{cfg.epr.refinery} labels from stage {t - 1}"
            print(f"  stage {t}/{cfg.epr.stages}: {what}; {len(inner)} inner networks + 1")
            train_table = make_table(cfg, rs, fold.train, labels_of, profiles, class_w, k)
            dev_table = make_table(cfg, rs, fold.dev, labels_of, profiles if cfg.epr.dev_labels == "refined" else None,
                                   class_w, k) if fold.dev else None
            new = {}
            for j, held in enumerate(inner, 1):
                net.train(rs, train_table.without(held), dev_table, os.path.join(stage_dir, f"inner{j}"), callbacks)
                new.update(zip(held, predict_profiles(net, rs, cfg, held)))
            net.train(rs, train_table, dev_table, os.path.join(stage_dir, "full"), callbacks)
            rest = list(fold.dev) + list(fold.test)
            new.update(zip(rest, predict_profiles(net, rs, cfg, rest)))
            save_profiles(path, new)
        profiles = new
        res, forest, probs = stage_metrics(cfg, profiles, fold, labels_of, label_names)
        res["stage"] = t
        stages.append(res)
        print(f"  stage {t}: segments WA {res['segment_wa']:.3f}; network WA {res['network']['wa']:.3f} "
              f"UA {res['network']['ua']:.3f}; forest WA {res['forest']['wa']:.3f} UA {res['forest']['ua']:.3f}")
    loop.write_predictions(fold_dir, rs.manifest, fold.test, probs, label_names)  # the final forest's
    last = os.path.join(fold_dir, f"stage{cfg.epr.stages}", "full", "best.keras")
    return stages, loop.load_model(last), forest


def run(cfg, out, d, callbacks=()):
    rs = d.records
    label_names = rs.label_names
    labelled = data.labelled(cfg, d.manifest)
    labels_of = dict(zip(labelled["utterance_id"], labelled["emotion"].map(label_names.index)))
    folds = data.fold_list(cfg, labelled)
    frames = rs.manifest.set_index("utterance_id").loc[list(labels_of), "num_frames"]
    short = int((frames < cfg.epr.segment_frames).sum())
    print(f"EPR on {cfg.data.corpus}: {len(labels_of)} utterances, "
          f"{int(segment_counts(cfg, rs, list(labels_of)).sum())} segments of {cfg.epr.segment_frames} frames "
          f"(hop {cfg.epr.segment_hop}); {short} utterances shorter than one segment are padded with silence")

    unseens = [data.Unseen(cfg, e) for e in cfg.data.eval_corpora]

    def train_one(fold, fold_dir):
        stages, net, forest = run_fold(cfg, rs, fold, fold_dir, labels_of, label_names, callbacks)
        model = build_epr_model(net, forest, rs.feature_dim, cfg.epr.segment_frames, cfg.epr.segment_hop,
                                pad_value(rs, cfg), cfg.epr.percentiles)
        loop.save_model(model, os.path.join(fold_dir, "best.keras"))
        final = stages[-1]["forest"]
        if unseens:
            stats = utterance_stats(rs, cfg, fold.train)

            def predict(u):
                ids = u.scored["utterance_id"].tolist()
                profiles = predict_profiles(net, u.records, cfg, ids, normalize=data.eval_normalizer(cfg, u.records, stats))
                return forest_probabilities(forest, statistics_matrix(profiles, cfg.epr.percentiles), len(label_names))

            final = {**final, "unseen": loop.score_unseen(cfg, fold_dir, unseens, predict, label_names)}
        res = {**final, "fold": fold.name, "stages": stages, **fold.to_dict(),
               "short_utterances": int(sum(frames[u] < cfg.epr.segment_frames for u in fold.test))}
        loop.confusion_plot(out, final, label_names, fold.name)
        return model, res

    results, first = loop.run_folds(cfg, out, folds, train_one,
                                    lambda fold_dir: loop.load_model(os.path.join(fold_dir, "best.keras")))
    per_stage = []
    for t in range(cfg.epr.stages):
        row = {"stage": t + 1, "segment_wa": M.mean_sd([r["stages"][t]["segment_wa"] for r in results])}
        for who in ("network", "forest"):
            row[who] = {m: M.mean_sd([r["stages"][t][who][m] for r in results]) for m in ("wa", "ua")}
        per_stage.append(row)
        print(f"stage {row['stage']}: network WA {row['network']['wa']['mean']:.3f} UA {row['network']['ua']['mean']:.3f}"
              f" | forest WA {row['forest']['wa']['mean']:.3f} UA {row['forest']['ua']['mean']:.3f}")
    export = None if first is None else loop.Export(first, rs.frontend, {
        "emotion_head": "random-forest probabilities over profile statistics",
        "segment_mean_head": "mean segment posterior (the network's decision)",
        "segment_frames": cfg.epr.segment_frames, "segment_hop": cfg.epr.segment_hop})
    return loop.finish(cfg, out, results, label_names, export=export, data=d,
                       extra={"refinery": cfg.epr.refinery, "short_utterances": short,
                              "statistics": statistic_names(label_names, cfg.epr.percentiles), "stages": per_stage},
                       name=f"epr ({cfg.epr.refinery}, {cfg.epr.stages} stages)")


def builders(cfg):
    return [build_vgg]


def check(cfg):
    if cfg.model.name != "vgg":
        raise ConfigError(f"model.name: EPR uses model 'vgg', got {cfg.model.name!r}")
    if cfg.train.strategy == "multi_worker":
        raise ConfigError("train.strategy: EPR does not train on several workers (each fold re-initialises and "
                          "predicts with one traced network); use default or mirrored")


register(System("epr", run, builders, check=check))
