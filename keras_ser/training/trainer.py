"""One training run: data preparation → folds → training → evaluation → export.

    from keras_ser.config import load_config
    from keras_ser.training.trainer import run
    summary = run(load_config("mlee/synthetic", ["data.synthetic_size=tiny", "train.epochs=2"]))

Output folder (`cfg.output_dir`):
    config.yaml                 the resolved config
    metrics.json                per fold and mean ± sd, with protocol, seed and corpus
    folds/<fold>/best.keras     best checkpoint on the dev set (written atomically)
    folds/<fold>/backup/        Keras BackupAndRestore state: an interrupted fit resumes here
    folds/<fold>/metrics.json   that fold's test metrics (a finished fold is skipped on resume)
    plots/confusion_<fold>.png  confusion matrices
    export/<name>/<version>/    SavedModel for TF Serving (first fold's best model)
"""

import contextlib
import dataclasses
import json
import logging
import os
import time
import warnings

import numpy as np

from keras_ser.config import save_config
from keras_ser.training import metrics as M
from keras_ser.training.protocols import check_fold, make_folds
from keras_ser.utils import save_figure, write_json


class _NoRetracingWarning(logging.Filter):
    """Length buckets give a handful of batch shapes by design; each traces once."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing():
    log = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetracingWarning) for f in log.filters):
        log.addFilter(_NoRetracingWarning())


def default_output_dir(cfg):
    return os.path.join("runs", f"{cfg.system}-{cfg.data.corpus}")


def _load_one(cfg, corpus, root):
    from keras_ser.corpora import load_corpus, synthetic

    if corpus == "synthetic":
        root = root or synthetic.default_root(cfg.data.synthetic_size, cfg.data.seed)
        return synthetic.generate(root, size=cfg.data.synthetic_size, seed=cfg.data.seed).manifest
    result = load_corpus(corpus, root)
    if len(result.skipped):  # the loader's list (the record writer's skipped.csv has only unreadable audio)
        print("\n".join([f"{corpus}: {len(result.skipped)} files not used:", *result.skipped_lines()]))
    return result.manifest


def load_manifest(cfg):
    """The corpus manifest for `cfg.data` (generating the synthetic corpus when needed); with
    `data.fuse`, the union of the corpora (utterance ids must not collide)."""
    import pandas as pd

    from keras_ser.errors import CorpusError

    parts = [_load_one(cfg, cfg.data.corpus, cfg.data.root)]
    parts += [_load_one(cfg, e["corpus"], e.get("root")) for e in cfg.data.fuse]
    if len(parts) == 1:
        return parts[0]
    manifest = pd.concat(parts, ignore_index=True)
    dup = manifest["utterance_id"].duplicated()
    if dup.any():
        raise CorpusError(f"data.fuse: utterance id {manifest['utterance_id'][dup].iloc[0]!r} occurs in two corpora")
    return manifest


def cache_name(corpus, root):
    """A corpus's part of the records folder name; a user's manifest is told apart by its path."""
    if corpus != "manifest":
        return corpus
    import hashlib

    stem = os.path.splitext(os.path.basename(root))[0]
    return f"manifest-{stem}-{hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:8]}"


def records_dir(cfg):
    """Where the records of `cfg.data` go (`data.records_dir`, or a cache folder).

    The cache folder's name holds the speed-perturbation factors: the writer rewrites a folder
    whose records differ from what is asked, so runs with and without copies (possibly at the
    same time) must not share one."""
    from keras_ser.corpora import synthetic

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
    from tfrecords_tools import write_records

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


def fold_list(cfg, manifest):
    """The protocol's folds. MLEE folds hold every utterance (the "all" training set needs those
    without a target emotion; each stage then keeps its usable ones and tests keep the dominant
    ones); other systems' folds hold the utterances of `data.emotions`."""
    from keras_ser.errors import ConfigError

    p = cfg.protocol
    labelled = manifest if cfg.system == "mlee" else manifest[manifest["emotion"].isin(cfg.data.emotions)]
    try:
        if p.name == "split":
            folds = make_folds(labelled, "split", fractions=tuple(p.fractions), seed=p.seed, group=p.group)
        elif p.name == "kfold":
            folds = make_folds(labelled, "kfold", k=p.k, seed=p.seed, group=p.group)
        else:
            folds = make_folds(labelled, p.name, dev=p.dev)
    except ValueError as e:  # too few speakers/utterances for the protocol: a config problem
        raise ConfigError(f"protocol {p.name} on {cfg.data.corpus}: {e}") from None
    group = {"loso": "speaker", "loso_session": "session"}.get(p.name, p.group)
    for f in folds:
        check_fold(f, labelled, group)
    return folds[: p.max_folds] if p.max_folds else folds


def _strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


@dataclasses.dataclass
class Stage:
    """One training stage of a recipe: what it learns, its learning rate, the stages it builds on."""

    name: str
    kind: str  # "hard", "soft" or "existence"
    learning_rate: float
    frozen: tuple = ()  # earlier stages whose encoders are reused, frozen

    @property
    def activation(self):
        return "sigmoid" if self.kind == "existence" else "softmax"


def recipe(cfg):
    """The stages of `cfg.task.variant` (MLEE paper §2; a single stage for "hard"/"soft")."""
    lrs, base = cfg.task.learning_rates, cfg.train.learning_rate
    v = cfg.task.variant
    target = v.rsplit("_", 1)[-1]  # hard or soft
    if v in ("hard", "soft"):
        return [Stage("dominant", v, base)]
    if v == "mlee_only":
        return [Stage("mlee", "existence", lrs["mlee"])]
    if v.startswith("pretrain_"):
        return [Stage("mlee", "existence", lrs["mlee"]), Stage("finetune", target, lrs["finetune"], ("mlee",))]
    if v.startswith("fusion_"):
        return [Stage("dominant", target, base), Stage("mlee", "existence", lrs["mlee"]),
                Stage("fusion", target, lrs["fusion"], ("dominant", "mlee"))]
    raise ValueError(f"task.variant: unknown variant {v!r}")


def stage_targets(cfg, manifest, label_names, kind):
    """`TargetSet` for a stage: hard targets always on the dominant set, others on task.train_set."""
    from keras_ser.labels.emotion_targets import make_targets

    train_set = "dominant" if kind == "hard" else cfg.task.train_set
    return make_targets(manifest, label_names, kind, train_set, cfg.task.soft_alpha)


def fold_shards(rs, ids):
    """Shard files holding the utterances `ids`."""
    man = rs.manifest
    shards = sorted(set(man.loc[man["utterance_id"].isin(set(ids)), "shard"]))
    return [os.path.join(rs.root, "shards", s) for s in shards]


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


def _class_dataset(rs, cfg, ids, targets, weights=None, shuffle=False, perturbed=False):
    w = np.ones(len(ids), np.float32) if weights is None else weights
    return make_dataset(rs, cfg, ids, {"targets": targets, "weights": w}, _emotion_xy, shuffle, perturbed)


def make_datasets(rs, fold, cfg, targets):
    """Train, dev and test pipelines of one fold for a stage's `TargetSet`.

    Train and dev hold the fold's usable utterances (the stage's training set); test holds the
    test utterances with a dominant label and one-hot targets of it, whatever the stage learns.
    Returns `(train, dev, test, weights)`; weights are the class weights (see
    `keras_ser.labels.emotion_targets.class_weights`) or None.
    """
    from keras_ser.labels.emotion_targets import class_weights, weighting_targets

    train, dev = targets.subset(fold.train), targets.subset(fold.dev)
    train_ids = [u for u, ok in zip(train.ids, train.usable) if ok]
    dev_ids = [u for u, ok in zip(dev.ids, dev.usable) if ok]
    train_t = train.targets[train.usable]
    weights, sw = None, None
    if cfg.train.class_weights and targets.kind == "existence":  # existence weights live in the loss
        weights = class_weights(train_t, targets.kind)
    elif cfg.train.class_weights:
        counted = weighting_targets(train_t, cfg.task.soft_weighting)
        weights = class_weights(counted, targets.kind)
        sw = (counted @ weights).astype(np.float32)
    test = targets.subset(fold.test)
    has_label = test.dominant >= 0
    test_ids = [u for u, ok in zip(test.ids, has_label) if ok]
    onehot = np.eye(targets.targets.shape[1], dtype=np.float32)[test.dominant[has_label]]
    return (_class_dataset(rs, cfg, train_ids, train_t, sw, shuffle=True, perturbed=True),
            _class_dataset(rs, cfg, dev_ids, dev.targets[dev.usable]),
            _class_dataset(rs, cfg, test_ids, onehot), weights)


def build_model(cfg, rs, stats, stage=None, encoders=None):
    """The model of a stage: a fresh MLEE classifier, or a new classifier on frozen encoders."""
    stage = stage or recipe(cfg)[-1]
    if cfg.model.name == "mlee":
        from keras_ser.models.mlee import build_mlee_classifier

        params = dict(cfg.model.params)
        if encoders:
            params = {k: v for k, v in params.items() if k in ("hidden_units",)}
        return build_mlee_classifier(num_classes=len(rs.label_names), feature_dim=rs.feature_dim,
                                     mean=stats.mean, std=stats.std(), activation=stage.activation,
                                     encoder=encoders or None, encoder_name=f"{stage.name}_encoder",
                                     name=f"mlee_{stage.name}", **params)
    raise ValueError(f"model.name: unknown model {cfg.model.name!r}")


def compile_stage(model, stage, weights, cfg):
    import keras

    from keras_ser.losses import WeightedBinaryCrossentropy

    if stage.kind == "existence":
        pos, neg = weights if weights is not None else (None, None)
        loss = WeightedBinaryCrossentropy(pos, neg)
        metrics = [keras.metrics.BinaryAccuracy(name="acc", threshold=0.5)]
    else:
        loss = keras.losses.CategoricalCrossentropy()
        metrics = [keras.metrics.CategoricalAccuracy(name="wa")]
    model.compile(optimizer=keras.optimizers.Adam(stage.learning_rate), loss={"emotion": loss},
                  metrics={"emotion": metrics}, jit_compile=cfg.train.jit_compile)
    return model


def load_model(path):
    """Load a `.keras` model written by a run, in any process (registers keras_ser's layers first)."""
    import keras

    import keras_ser.layers  # noqa: F401 (registers the custom layers)
    import keras_ser.losses  # noqa: F401

    return keras.saving.load_model(path, compile=False)


class AtomicBestCheckpoint:
    """Keras callback factory: save the best model on `monitor` under a temporary name, then rename."""

    @staticmethod
    def make(path, monitor="val_loss"):
        import keras

        class _Cb(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.best = np.inf

            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get(monitor)
                if value is not None and value < self.best:
                    self.best = value
                    tmp = path[: -len(".keras")] + f".tmp-{os.getpid()}.keras"
                    self.model.save(tmp)
                    os.replace(tmp, path)

        return _Cb()


def predict_labels(model, ds):
    """`(true class indices, emotion probabilities)` over a labelled dataset. Batches go through
    `predict_on_batch` (one traced function): an eager call runs the BiLSTMs step by step in
    Python, 5-20x slower on CPU."""
    y_true, y_prob = [], []
    for x, y, _ in ds:
        out = model.predict_on_batch(x)
        y_prob.append(np.asarray(out["emotion"]))
        y_true.append(np.argmax(np.asarray(y["emotion"]), -1))
    return np.concatenate(y_true), np.concatenate(y_prob)


def plot_confusion(cm, labels, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(4 + 0.4 * len(labels), 3.5 + 0.4 * len(labels)))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


def train_stage(cfg, rs, fold, stage, stage_dir, targets, stats, encoders=None, callbacks=()):
    """Train one stage of one fold (resuming if interrupted); returns its best model."""
    import keras

    os.makedirs(stage_dir, exist_ok=True)
    best = os.path.join(stage_dir, "best.keras")
    done = os.path.join(stage_dir, "done")
    if cfg.train.resume and os.path.exists(done) and os.path.exists(best):
        return load_model(best), None
    train_ds, dev_ds, _, weights = make_datasets(rs, fold, cfg, targets)
    keras.utils.set_random_seed(cfg.seed)
    with _strategy(cfg.train.strategy).scope():
        model = compile_stage(build_model(cfg, rs, stats, stage, encoders), stage, weights, cfg)
    return fit(model, train_ds, dev_ds, stage_dir, cfg, callbacks), weights


def fit(model, train_ds, dev_ds, stage_dir, cfg, callbacks=(), monitor="val_loss", reload=True):
    """`model.fit` that resumes after an interruption and keeps the best epoch on `monitor`.

    Writes `stage_dir/backup/` (BackupAndRestore), `stage_dir/best.keras` (atomic),
    `stage_dir/history.csv`, and `stage_dir/done` when finished; returns the best model: loaded
    from `best.keras`, or with `reload=False`, `model` itself with the best weights loaded into
    it (keeps its traced functions).
    """
    import keras

    best = os.path.join(stage_dir, "best.keras")
    cbs = [
        keras.callbacks.BackupAndRestore(os.path.join(stage_dir, "backup")),
        AtomicBestCheckpoint.make(best, monitor),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=cfg.train.patience, restore_best_weights=False),
        keras.callbacks.CSVLogger(os.path.join(stage_dir, "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
        *callbacks,
    ]
    if not cfg.train.resume:
        import shutil

        shutil.rmtree(os.path.join(stage_dir, "backup"), ignore_errors=True)
    model.fit(train_ds, validation_data=dev_ds, epochs=cfg.train.epochs, callbacks=cbs, verbose=cfg.train.verbose)
    if os.path.exists(best):
        if reload:
            model = load_model(best)
        else:
            model.load_weights(best)
    open(os.path.join(stage_dir, "done"), "w").close()
    return model


def run_folds(cfg, out, folds, train_one, load_first):
    """The fold loop every system shares: train each fold, skip the finished ones on resume.

    `train_one(fold, fold_dir)` trains and tests one fold and returns `(model, metrics)`;
    the metrics are written (atomically) to `fold_dir/metrics.json`, which marks the fold
    finished. `load_first(fold_dir)` rebuilds the first fold's model when that fold was
    finished by an earlier run (the export uses the first fold's model). Returns
    `(list of the folds' metrics, first fold's model or None)`.
    """
    results, first = [], None
    for i, fold in enumerate(folds):
        fold_dir = os.path.join(out, "folds", fold.name)
        finished = finished_fold(cfg, fold_dir)
        if finished:
            results.append(finished)
            if i == 0:
                first = load_first(fold_dir)
            continue
        print(f"fold {i + 1}/{len(folds)} {fold.name}: train {len(fold.train)}, dev {len(fold.dev)}, test {len(fold.test)}")
        model, res = train_one(fold, fold_dir)
        write_json(res, os.path.join(fold_dir, "metrics.json"))
        results.append(res)
        if i == 0:
            first = model
    return results, first


def finished_fold(cfg, fold_dir):
    """The saved test metrics of a finished fold (`fold_dir/metrics.json`) when resuming, else None."""
    done = os.path.join(fold_dir, "metrics.json")
    if cfg.train.resume and os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    return None


def train_fold(cfg, rs, fold, fold_dir, manifest, callbacks=()):
    """Run the recipe's stages on one fold; returns (final model, test metrics).

    Stage `s` lives in `fold_dir/<s>/` (best.keras, history.csv, backup/); the final model is
    also saved as `fold_dir/best.keras`. Test metrics use the test fold's dominant labels; an
    existence model decides by the argmax of its existence probabilities.
    """
    from keras_ser.models.mlee import find_encoders

    os.makedirs(fold_dir, exist_ok=True)
    stats = rs.feature_stats(fold_shards(rs, fold.train))
    models, all_weights = {}, {}
    for stage in recipe(cfg):
        targets = stage_targets(cfg, manifest, rs.label_names, stage.kind)
        encoders = None
        if stage.frozen:
            encoders = [find_encoders(models[name])[0] for name in stage.frozen]
            for e in encoders:
                e.trainable = False
        print(f"  stage {stage.name}: {stage.kind} targets, lr {stage.learning_rate:g}"
              + (f", frozen encoders of {', '.join(stage.frozen)}" if stage.frozen else ""))
        model, weights = train_stage(cfg, rs, fold, stage, os.path.join(fold_dir, stage.name), targets, stats,
                                     encoders, callbacks)
        models[stage.name] = model
        if weights is not None:
            all_weights[stage.name] = np.asarray(weights).tolist()
    tmp = os.path.join(fold_dir, f"best.tmp-{os.getpid()}.keras")
    model.save(tmp)
    os.replace(tmp, os.path.join(fold_dir, "best.keras"))
    _, _, test_ds, _ = make_datasets(rs, fold, cfg, stage_targets(cfg, manifest, rs.label_names, "hard"))
    y_true, y_prob = predict_labels(model, test_ds)
    result = M.classification_metrics(y_true, y_prob.argmax(-1), rs.label_names)
    result.update(fold=fold.name, variant=cfg.task.variant, train_set=cfg.task.train_set, test_dominant=len(y_true),
                  class_weights=all_weights or None, **fold.to_dict())
    return model, result


def run(cfg, callbacks=()):
    """Run a whole config; returns the summary written to metrics.json."""
    # tf.data pipelines are finite and shuffled by design; Keras warns about both needlessly.
    warnings.filterwarnings("ignore", message=".*shuffle=True.*was passed.*")
    warnings.filterwarnings("ignore", message=".*Your input ran out of data.*")
    _quiet_retracing()

    out = cfg.output_dir or default_output_dir(cfg)
    os.makedirs(out, exist_ok=True)
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    save_config(cfg, os.path.join(out, "config.yaml"))
    if cfg.train.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # process-wide; TensorFlow has no public undo
    with precision(cfg):
        return _run(cfg, out, callbacks)


@contextlib.contextmanager
def precision(cfg):
    """The run's global Keras dtype policy, restored on exit: with `train.mixed_precision`,
    float16 on GPUs and bfloat16 on CPUs (which have no fast float16 kernels)."""
    import keras

    policy = keras.config.dtype_policy()
    if cfg.train.mixed_precision:
        import tensorflow as tf

        keras.config.set_dtype_policy("mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)


# Builder arguments the trainers set themselves (from the data, the stage or the fold):
# `model.params` may not name them.
_SET_BY_TRAINER = frozenset({"num_classes", "feature_dim", "mean", "std", "segment_frames", "vocab_size",
                             "embeddings", "train_embeddings", "activation", "encoder", "encoder_name", "name",
                             "kind", "return_attention"})


def model_builders(cfg):
    """The model-building functions whose keyword arguments `cfg.model.params` may set."""
    if cfg.system == "strengthnet":
        from keras_ser.models.strengthnet import build_strengthnet

        return [build_strengthnet]
    if cfg.system == "epr":
        from keras_ser.models.epr import build_vgg

        return [build_vgg]
    if cfg.system == "fg_cme":
        from keras_ser.models.fg_cme import build_baseline, build_fg_cme

        return [build_fg_cme if cfg.model.name == "fg_cme" else build_baseline]
    from keras_ser.models.mlee import build_mlee_classifier, build_mlee_encoder

    return [build_mlee_classifier, build_mlee_encoder]  # the classifier passes the rest to its encoder


def check_model_params(cfg):
    """Raise ConfigError, before any data is read, for `model.params` keys that the run's model
    does not take (a typo would otherwise surface as a TypeError after feature extraction)."""
    import inspect

    from keras_ser.errors import ConfigError

    known = set()
    for builder in model_builders(cfg):
        known |= {n for n, p in inspect.signature(builder).parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    known -= _SET_BY_TRAINER
    unknown = sorted(set(cfg.model.params) - known)
    if unknown:
        raise ConfigError(f"model.params: {', '.join(map(repr, unknown))} not taken by the {cfg.model.name} model; "
                          f"it takes {', '.join(sorted(known))}")
    spec = cfg.model.params.get("spec_augment")
    if spec is not None:
        from keras_ser.layers import SpecAugment

        takes = [n for n in inspect.signature(SpecAugment.__init__).parameters if n not in ("self", "kwargs")]
        if not isinstance(spec, dict) or set(spec) - set(takes):
            raise ConfigError(f"model.params.spec_augment: {spec!r} is not a mapping of {', '.join(takes)}")
    norm = cfg.model.params.get("utterance_norm")
    if norm not in (None, "mean", "meanvar"):
        raise ConfigError(f"model.params.utterance_norm: {norm!r} is not one of null, 'mean', 'meanvar'")


def _run(cfg, out, callbacks):
    check_model_params(cfg)
    if cfg.system in ("strengthnet", "epr", "fg_cme"):
        from keras_ser.training import epr, fg_cme, strength

        start = time.time()
        summary = {"strengthnet": strength, "epr": epr, "fg_cme": fg_cme}[cfg.system].run(cfg, out, callbacks)
        summary["seconds"] = round(time.time() - start, 1)
        write_json(summary, os.path.join(out, "metrics.json"))
        return summary
    start = time.time()
    manifest = load_manifest(cfg)
    rs = prepare_records(cfg, manifest)
    folds = fold_list(cfg, manifest)

    def train_one(fold, fold_dir):
        model, res = train_fold(cfg, rs, fold, fold_dir, manifest, callbacks)
        plot_confusion(res["confusion"], res["labels"], os.path.join(out, "plots", f"confusion_{fold.name}.png"),
                       f"{fold.name}: WA {res['wa']:.3f} UA {res['ua']:.3f}")
        print(f"fold {fold.name}: WA {res['wa']:.3f} UA {res['ua']:.3f} macro-F1 {res['macro_f1']:.3f}")
        return model, res

    results, first_model = run_folds(cfg, out, folds, train_one,
                                     lambda fold_dir: load_model(os.path.join(fold_dir, "best.keras")))
    summary = {
        "system": cfg.system, "corpus": cfg.data.corpus, "protocol": cfg.protocol.name,
        "variant": cfg.task.variant, "train_set": cfg.task.train_set,
        "seed": cfg.seed, "folds_run": len(results), "labels": rs.label_names,
        "mean": {k: M.mean_sd([r[k] for r in results]) for k in ("wa", "ua", "macro_f1")},
        "folds": results, "seconds": round(time.time() - start, 1),
    }
    total = np.sum([np.asarray(r["confusion"]) for r in results], axis=0)
    plot_confusion(total, rs.label_names, os.path.join(out, "plots", "confusion_all.png"),
                   f"all folds: WA {summary['mean']['wa']['mean']:.3f}")
    if cfg.export.enabled and first_model is not None:
        from keras_ser.serving.export import export_model

        name = cfg.export.name or cfg.system
        path = export_model(first_model, os.path.join(out, "export", name), version=cfg.export.version,
                            frontend=rs.frontend, label_names=rs.label_names,
                            metadata={"variant": cfg.task.variant, "emotion_head": (
                                "existence" if recipe(cfg)[-1].kind == "existence" else "probabilities")})
        summary["export"] = path
    write_json(summary, os.path.join(out, "metrics.json"))
    m = summary["mean"]
    print(f"{cfg.system} on {cfg.data.corpus} ({cfg.protocol.name}, {len(results)} folds): "
          f"WA {m['wa']['mean']:.3f} ± {m['wa']['sd']:.3f}, UA {m['ua']['mean']:.3f} ± {m['ua']['sd']:.3f}")
    return summary
