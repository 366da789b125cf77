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

import json
import os
import time
import warnings

import numpy as np

from keras_ser.config import save_config
from keras_ser.training import metrics as M
from keras_ser.training.protocols import check_fold, make_folds


def _atomic_json(obj, path):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def default_output_dir(cfg):
    return os.path.join("runs", f"{cfg.system}-{cfg.data.corpus}")


def load_manifest(cfg):
    """The corpus manifest for `cfg.data` (generating the synthetic corpus when needed)."""
    from keras_ser.corpora import load_corpus, synthetic

    if cfg.data.corpus == "synthetic":
        root = cfg.data.root or synthetic.default_root(cfg.data.synthetic_size, cfg.data.seed)
        return synthetic.generate(root, size=cfg.data.synthetic_size, seed=cfg.data.seed).manifest
    result = load_corpus(cfg.data.corpus, cfg.data.root)
    if len(result.skipped):
        print(f"{cfg.data.corpus}: {len(result.skipped)} files skipped (see skipped.csv in the records folder)")
    return result.manifest


def prepare_records(cfg, manifest):
    """Write (or reuse) the records for this config; returns a `RecordSet`."""
    from keras_ser.corpora import synthetic
    from tfrecords_tools import write_records

    records_dir = cfg.data.records_dir
    if not records_dir:
        base = os.path.dirname(os.path.dirname(synthetic.default_root()))
        tag = cfg.data.synthetic_size if cfg.data.corpus == "synthetic" else "full"
        records_dir = os.path.join(base, "records", f"{cfg.data.corpus}-{tag}-seed{cfg.data.seed}-{cfg.data.frontend}")
    shard_by = "session" if cfg.protocol.name == "loso_session" else "speaker"
    return write_records(manifest, records_dir, frontend=cfg.data.frontend, label_names=cfg.data.emotions,
                         shard_by=shard_by, speed_factors=tuple(cfg.data.speed_perturb),
                         num_workers=cfg.data.num_workers, progress=cfg.train.verbose > 0)


def fold_list(cfg, manifest):
    p = cfg.protocol
    labelled = manifest[manifest["emotion"].isin(cfg.data.emotions)]
    if p.name == "split":
        folds = make_folds(labelled, "split", fractions=tuple(p.fractions), seed=p.seed, group=p.group)
    elif p.name == "kfold":
        folds = make_folds(labelled, "kfold", k=p.k, seed=p.seed, group=p.group)
    else:
        folds = make_folds(labelled, p.name, dev=p.dev)
    group = {"loso": "speaker", "loso_session": "session"}.get(p.name, p.group)
    for f in folds:
        check_fold(f, labelled, group)
    return folds[: p.max_folds] if p.max_folds else folds


def class_weights(labels, num_classes):
    """Inverse class frequency, normalised to mean 1 over the classes present."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return w


def _strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def make_datasets(rs, fold, cfg, train=True):
    """tf.data pipelines (x, y, sample_weight) for one fold, filtered to the fold's utterances."""
    import tensorflow as tf

    ids = {"train": fold.train, "dev": fold.dev, "test": fold.test}
    man = rs.manifest
    k = len(rs.label_names)
    out = {}
    for part, part_ids in ids.items():
        part_ids = set(part_ids)
        shards = sorted(set(man.loc[man["utterance_id"].isin(part_ids), "shard"]))
        perturbed = part == "train" and bool(cfg.data.speed_perturb)
        files = [os.path.join(rs.root, "shards", s) for s in shards]
        if perturbed:
            keys = {s["key"] for s in rs.meta["shards"] if s["file"] in shards}
            files = rs.files(keys=keys, with_perturbed=True)
        allowed = sorted(part_ids | ({f"{u}_sp{s:g}" for u in part_ids for s in cfg.data.speed_perturb} if perturbed else set()))
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(allowed), tf.ones(len(allowed), tf.int32)), 0)
        out[part] = (files, table)
    weights = None
    if cfg.train.class_weights:
        lab = man[man["utterance_id"].isin(set(fold.train))]["emotion"]
        weights = class_weights(np.array([rs.label_names.index(e) for e in lab]), k)

    def build(part, shuffle):
        files, table = out[part]
        w = tf.constant(weights if weights is not None else np.ones(k), tf.float32)

        def keep(ex):
            return (table.lookup(ex["utterance_id"]) > 0) & (ex["label"] >= 0)

        ds = rs.dataset(files, batch_size=cfg.train.batch_size, shuffle=shuffle, seed=cfg.seed,
                        max_frames=cfg.data.max_frames, filter_fn=keep)

        def to_xy(b):
            x = {"features": b["features"], "num_frames": b["num_frames"]}
            y = {"emotion": tf.one_hot(b["label"], k)}
            sw = {"emotion": tf.gather(w, b["label"]) if part == "train" else tf.ones_like(b["strength"])}
            return x, y, sw

        return ds.map(to_xy, num_parallel_calls=tf.data.AUTOTUNE)

    return build("train", True), build("dev", False), build("test", False), weights


def build_model(cfg, rs, stats):
    if cfg.model.name == "mlee":
        from keras_ser.models.mlee import build_mlee_classifier

        return build_mlee_classifier(num_classes=len(rs.label_names), feature_dim=rs.feature_dim,
                                     mean=stats.mean, std=stats.std(), **cfg.model.params)
    raise ValueError(f"model.name: unknown model {cfg.model.name!r}")


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
    y_true, y_prob = [], []
    for x, y, _ in ds:
        out = model(x, training=False)
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
    tmp = path[:-4] + f".tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def train_fold(cfg, rs, fold, fold_dir, callbacks=()):
    """Train one fold (resuming if interrupted); returns (best model, test metrics)."""
    import keras

    os.makedirs(fold_dir, exist_ok=True)
    train_ds, dev_ds, test_ds, weights = make_datasets(rs, fold, cfg)
    train_files = train_ds_files(rs, fold)
    stats = rs.feature_stats(train_files)
    keras.utils.set_random_seed(cfg.seed)
    strategy = _strategy(cfg.train.strategy)
    with strategy.scope():
        model = build_model(cfg, rs, stats)
        model.compile(
            optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
            loss={"emotion": keras.losses.CategoricalCrossentropy()},
            metrics={"emotion": [keras.metrics.CategoricalAccuracy(name="wa")]},
            jit_compile=cfg.train.jit_compile,
        )
    best = os.path.join(fold_dir, "best.keras")
    cbs = [
        keras.callbacks.BackupAndRestore(os.path.join(fold_dir, "backup")),
        AtomicBestCheckpoint.make(best),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.train.patience, restore_best_weights=False),
        keras.callbacks.CSVLogger(os.path.join(fold_dir, "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
        *callbacks,
    ]
    if not cfg.train.resume:
        import shutil

        shutil.rmtree(os.path.join(fold_dir, "backup"), ignore_errors=True)
    model.fit(train_ds, validation_data=dev_ds, epochs=cfg.train.epochs, callbacks=cbs, verbose=cfg.train.verbose)
    if os.path.exists(best):
        model = keras.saving.load_model(best)
    y_true, y_prob = predict_labels(model, test_ds)
    result = M.classification_metrics(y_true, y_prob.argmax(-1), rs.label_names)
    result.update(fold=fold.name, train_weights=None if weights is None else weights.tolist(), **fold.to_dict())
    return model, result


def train_ds_files(rs, fold):
    man = rs.manifest
    shards = sorted(set(man.loc[man["utterance_id"].isin(set(fold.train)), "shard"]))
    return [os.path.join(rs.root, "shards", s) for s in shards]


def run(cfg, callbacks=()):
    """Run a whole config; returns the summary written to metrics.json."""
    import keras

    # tf.data pipelines are finite and shuffled by design; Keras warns about both needlessly.
    warnings.filterwarnings("ignore", message=".*shuffle=True.*was passed.*")
    warnings.filterwarnings("ignore", message=".*Your input ran out of data.*")

    out = cfg.output_dir or default_output_dir(cfg)
    os.makedirs(out, exist_ok=True)
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    save_config(cfg, os.path.join(out, "config.yaml"))
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    start = time.time()
    manifest = load_manifest(cfg)
    rs = prepare_records(cfg, manifest)
    folds = fold_list(cfg, manifest)
    results = []
    first_model = None
    for i, fold in enumerate(folds):
        fold_dir = os.path.join(out, "folds", fold.name)
        done = os.path.join(fold_dir, "metrics.json")
        if os.path.exists(done) and cfg.train.resume:
            with open(done) as f:
                results.append(json.load(f))
            if i == 0:
                first_model = keras.saving.load_model(os.path.join(fold_dir, "best.keras"))
            continue
        print(f"fold {i + 1}/{len(folds)} {fold.name}: train {len(fold.train)}, dev {len(fold.dev)}, test {len(fold.test)}")
        model, res = train_fold(cfg, rs, fold, fold_dir, callbacks)
        plot_confusion(res["confusion"], res["labels"], os.path.join(out, "plots", f"confusion_{fold.name}.png"),
                       f"{fold.name}: WA {res['wa']:.3f} UA {res['ua']:.3f}")
        _atomic_json(res, done)
        results.append(res)
        print(f"fold {fold.name}: WA {res['wa']:.3f} UA {res['ua']:.3f} macro-F1 {res['macro_f1']:.3f}")
        if i == 0:
            first_model = model
    summary = {
        "system": cfg.system, "corpus": cfg.data.corpus, "protocol": cfg.protocol.name,
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
                            frontend=rs.frontend, label_names=rs.label_names)
        summary["export"] = path
    _atomic_json(summary, os.path.join(out, "metrics.json"))
    m = summary["mean"]
    print(f"{cfg.system} on {cfg.data.corpus} ({cfg.protocol.name}, {len(results)} folds): "
          f"WA {m['wa']['mean']:.3f} ± {m['wa']['sd']:.3f}, UA {m['ua']['mean']:.3f} ± {m['ua']['sd']:.3f}")
    return summary
