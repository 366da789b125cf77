"""The loop every system shares: fit with checkpoints and resume, the fold loop, prediction, the
distribution strategy and precision, and `finish`, the tail of every run.

A stage's folder (`fit`):
    best.keras      the best epoch on the monitored dev metric (atomic)
    state.json      every finished epoch's monitored value and the epoch best.keras holds: a
                    resumed fit restores the best value and the patience count from it
    backup/         Keras BackupAndRestore: an interrupted fit resumes at its last epoch
    history.csv     per-epoch logs
    done            the fit finished

A run's folder (`run_folds`, `finish`):
    folds/<fold>/metrics.json   that fold's test metrics (a finished fold is skipped on resume)
    plots/confusion_<fold>.png, plots/confusion_all.png
    export/<name>/<version>/    SavedModel of the first fold's model
"""

import contextlib
import dataclasses
import os
import shutil
import time
import typing
import warnings

import keras
import numpy as np

import keras_ser.layers  # noqa: F401 (registers the custom layers: load_model reads them)
import keras_ser.losses  # noqa: F401
import keras_ser.models  # noqa: F401 (registers the models' own layers)
from keras_ser.errors import ConfigError
from keras_ser.serving.export import export_model, export_vector_model
from keras_ser.training import metrics as M
from keras_ser.training import workers
from keras_ser.training.data import classification_dataset, eval_normalizer, folds_to_json
from keras_ser.training.plots import plot_confusion
from keras_ser.utils import atomic_path, read_json, write_csv, write_json


# -- where and how ----------------------------------------------------------------------------
def strategy(name):
    """The `tf.distribute` strategy of `train.strategy` ("default", "mirrored", "multi_worker":
    the one `keras_ser.training.workers.start` created at the start of the run). Build and
    compile models in its scope; call `fit` outside it, so that the best model it reloads is an
    ordinary one that predicts on one worker alone."""
    import tensorflow as tf

    if name == "multi_worker":
        return workers.strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def precision(cfg):
    """The run's global Keras dtype policy, restored on exit: with `train.mixed_precision`,
    float16 on GPUs and bfloat16 on CPUs (which have no fast float16 kernels)."""
    policy = keras.config.dtype_policy()
    if cfg.train.mixed_precision:
        import tensorflow as tf

        keras.config.set_dtype_policy("mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)


# -- models on disk -----------------------------------------------------------------------------
def load_model(path):
    """Load a `.keras` model written by a run, in any process (registers keras_ser's layers first)."""
    return keras.saving.load_model(path, compile=False)


def save_model(model, path):
    """`model.save(path)` atomically (a `.keras` file)."""
    with atomic_path(path, keep_suffix=True) as tmp:
        model.save(tmp)
    return path


def model_params(cfg, derived):
    """`model.params` with the builder arguments `derived` that follow from the records' frontend
    (a system's `frontend_params`: frame hop and window, input layout). A `model.params` value
    that contradicts one is a ConfigError naming both; an equal one is allowed."""
    params = dict(cfg.model.params)
    for key, value in derived.items():
        given = params.get(key, value)
        same = (np.isclose(given, value) if isinstance(value, float) and isinstance(given, (int, float))
                else given == value)
        if not same:
            raise ConfigError(f"model.params.{key}: {given!r} contradicts the frontend {cfg.data.frontend!r}, "
                              f"which gives {key} = {value!r} (leave it out: it follows from the frontend)")
        params[key] = value
    return params


# -- fitting ------------------------------------------------------------------------------------
class BestCheckpoint(keras.callbacks.Callback):
    """Keep the best epoch on `monitor` (lower is better) in `path` and stop after `patience`
    epochs without improvement, with a state that survives an interruption.

    Keras's own `ModelCheckpoint` and `EarlyStopping` forget their best value when a fit is
    resumed by `BackupAndRestore`: the first resumed epoch always overwrote the best checkpoint
    and the patience count restarted. Here each finished epoch's value goes to `state_path`
    (atomically) before `BackupAndRestore` saves that epoch (this callback must come before it),
    and the first epoch of a fit restores the values of the epochs before it, the best value
    and the epochs since, exactly as they were when training was interrupted. An improvement is
    strictly lower than the best so far; a missing or NaN value is none (as in Keras).

    With `select` "last" or "average" (`train.select`) nothing is chosen or stopped on the
    monitored value (still recorded): `path` holds the last of `epochs` epochs' weights, or the
    mean of the last `average` epochs' (`_keep_fixed`).
    """

    def __init__(self, path, monitor="val_loss", patience=None, state_path=None, select="best", epochs=None,
                 average=5):
        super().__init__()
        self.path, self.monitor, self.patience = path, monitor, patience
        self.state_path = state_path or os.path.join(os.path.dirname(path), "state.json")
        self.select, self.epochs, self.average = select, epochs, average
        self.snapshots = os.path.join(os.path.dirname(path), "average")
        self.values, self.saved, self.best, self.wait = {}, None, np.inf, 0
        self._restored = False

    def on_train_begin(self, logs=None):
        self._restored = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._restored:
            return
        self._restored = True
        state = read_json(self.state_path) if os.path.exists(self.state_path) else {}
        self.values = {int(e): v for e, v in state.get("values", {}).items() if int(e) < epoch}
        self.saved = state.get("saved") if os.path.exists(self.path) else None
        if epoch == 0 and os.path.exists(self.path):  # a fresh fit: an earlier attempt's file is not ours
            os.remove(self.path)
            self.saved = None
        self.best, best_epoch = np.inf, -1
        for e in sorted(self.values):
            if self.values[e] is not None and self.values[e] < self.best:
                self.best, best_epoch = self.values[e], e
        if self.saved is not None:  # the file's own value: it may come from an epoch run again now
            self.best, best_epoch = self.saved["value"], min(self.saved["epoch"], epoch - 1)
        self.wait = epoch - 1 - best_epoch if best_epoch >= 0 else len(self.values)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs and self.select == "best":  # nothing to watch (as Keras)
            return
        value = float(logs[self.monitor]) if np.isfinite(logs.get(self.monitor, np.nan)) else None
        self.values[epoch] = value
        self._write()
        if self.select != "best":
            self._keep_fixed(epoch, value)
            return
        if value is not None and value < self.best:
            self.best, self.wait = value, 0
            save_model(self.model, self.path)
            self.saved = {"epoch": epoch, "value": value}
            self._write()
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience and epoch > 0:
                self.model.stop_training = True

    def _keep_fixed(self, epoch, value):
        """`select` "last" or "average": nothing is chosen on the development set; the model is
        the last epoch's weights, or the mean of the last `average` epochs' (each epoch's are
        kept in `average/` until the end, so an interrupted fit averages the same epochs)."""
        last = self.epochs is None or epoch == self.epochs - 1
        if self.select == "average" and self.epochs is not None and epoch >= self.epochs - self.average:
            os.makedirs(self.snapshots, exist_ok=True)
            with atomic_path(os.path.join(self.snapshots, f"epoch{epoch}.npz"), keep_suffix=True) as tmp:
                np.savez(tmp, *self.model.get_weights())
            if last:
                self.model.set_weights(average_weights(
                    [os.path.join(self.snapshots, f"epoch{e}.npz") for e in range(self.epochs - self.average, self.epochs)]))
        if self.select == "last" or last:
            save_model(self.model, self.path)
            self.saved = {"epoch": epoch, "value": value, "select": self.select}
            self._write()

    def _write(self):
        write_json({"monitor": self.monitor, "values": {str(e): v for e, v in sorted(self.values.items())},
                    "saved": self.saved}, self.state_path)


def average_weights(paths):
    """The mean of the weight lists saved in `paths` (`np.savez` of `get_weights()`): floating
    weights averaged, others (counters, seeds) taken from the last."""
    lists = []
    for p in paths:
        with np.load(p) as z:
            lists.append([z[f"arr_{i}"] for i in range(len(z.files))])
    return [np.mean(ws, axis=0).astype(ws[-1].dtype) if np.issubdtype(ws[-1].dtype, np.floating) else ws[-1]
            for ws in zip(*lists)]


class CosineSchedule(keras.callbacks.Callback):
    """The learning rate of each epoch: a linear warm-up over `warmup` epochs (base/(warmup+1),
    2·base/(warmup+1), ...), then `base` decaying along a cosine towards 0 at the end of `epochs` (set at the start of every epoch, so a resumed
    fit continues the same curve)."""

    def __init__(self, base, epochs, warmup=0):
        super().__init__()
        self.base, self.epochs, self.warmup = base, epochs, warmup

    def rate(self, epoch):
        if epoch < self.warmup:
            return self.base * (epoch + 1) / (self.warmup + 1)
        progress = (epoch - self.warmup) / max(1, self.epochs - self.warmup)
        return self.base * 0.5 * (1.0 + np.cos(np.pi * progress))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rate(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # history.csv shows the curve
            logs["learning_rate"] = self.rate(epoch)


class SyncReplicaState(keras.callbacks.Callback):
    """Sets each untrained float variable (batch normalisation's moving statistics) to its mean
    over the replicas of one machine (`train.strategy=mirrored` on several devices), before each
    evaluation and at the end of each epoch.

    Keras 3 creates these variables without an aggregation, so under `MirroredStrategy` every
    device updates its own copy from its share of the batch and the copies drift apart; what is
    read, saved and exported is the first device's. Their mean is exactly the moving average of
    the batch statistics averaged over the replicas (the moving average is linear). Each replica
    still normalises with its own share while training, as unsynchronised batch normalisation
    does. With one replica this does nothing; `train.strategy=multi_worker` averages over workers
    in `keras_ser.training.workers`."""

    def _sync(self):
        for v in self.model.non_trainable_variables:
            copies = getattr(v.value, "values", None)
            if not copies or len(copies) < 2 or not v.dtype.startswith("float"):
                continue
            mean = sum(c.read_value() for c in copies) / len(copies)
            for c in copies:
                c.assign(mean)

    def on_test_begin(self, logs=None):
        self._sync()

    def on_epoch_end(self, epoch, logs=None):
        self._sync()


def make_optimizer(cfg, learning_rate, **kwargs):
    """The optimizer of `train.optimizer` ("adam"; "adamw" with `train.weight_decay`)."""
    if cfg.train.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=cfg.train.weight_decay, **kwargs)
    return keras.optimizers.Adam(learning_rate, **kwargs)


def fit(model, train_ds, dev_ds, stage_dir, cfg, callbacks=(), monitor="val_loss", reload=True):
    """`model.fit` that resumes after an interruption and keeps the best epoch on `monitor`.

    Writes the stage folder described in the module docstring; returns the best model: loaded
    from `best.keras`, or with `reload=False`, `model` itself with the best weights loaded into
    it (keeps its traced functions). Without `train.resume` an earlier attempt's files are
    removed first.
    """
    if dev_ds is None and cfg.train.select == "best":
        raise ConfigError("train.select=best chooses the epoch on development utterances, and this fold has none "
                          "(use train.select=last or average, or a protocol with a development set)")
    os.makedirs(stage_dir, exist_ok=True)
    best = os.path.join(stage_dir, "best.keras")
    if not cfg.train.resume:
        for name in ("backup", "history.csv", "state.json", "best.keras", "done", "average"):
            path = os.path.join(stage_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.path.exists(path) and os.remove(path)
    t = cfg.train
    keep = BestCheckpoint(best, monitor, t.patience, select=t.select, epochs=t.epochs, average=t.average_epochs)
    schedule = []
    if t.schedule == "cosine":
        schedule = [CosineSchedule(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)), t.epochs,
                                   t.warmup_epochs)]
    cbs = [
        SyncReplicaState(),  # first: the epoch is scored and saved with the replicas' mean statistics
        keep,  # before the backup: see its docstring
        *schedule,
        keras.callbacks.BackupAndRestore(os.path.join(stage_dir, "backup")),
        keras.callbacks.CSVLogger(os.path.join(stage_dir, "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
        *callbacks,
    ]
    if workers.active():
        workers.fit(model, train_ds, dev_ds, cfg.train.epochs, cbs, verbose=cfg.train.verbose)
    else:
        with warnings.catch_warnings():
            # Keras warns "Your input ran out of data; interrupting training" at the end of the first
            # epoch over any dataset of unknown length (every TFRecord pipeline here): without
            # steps_per_epoch nothing is cut short, and a user reading it would think otherwise.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            # shuffle=False: the pipelines shuffle themselves (Keras ignores shuffle for a tf.data
            # dataset and warns when it is left at its default, True)
            model.fit(train_ds, validation_data=dev_ds, epochs=cfg.train.epochs, callbacks=cbs,
                      verbose=cfg.train.verbose, shuffle=False)
    if os.path.exists(best):
        if reload:
            model = load_model(best)
        else:
            model.load_weights(best)
    open(os.path.join(stage_dir, "done"), "w").close()
    return model


def finished_stage(cfg, stage_dir):
    """Whether a stage's fit finished in an earlier run (and `train.resume` lets it be reused)."""
    return (cfg.train.resume and os.path.exists(os.path.join(stage_dir, "done"))
            and os.path.exists(os.path.join(stage_dir, "best.keras")))


def predict_labels(model, ds):
    """`(true class indices, emotion probabilities)` over a labelled dataset, in the order of the
    ids it was built from when it carries their positions (`data.make_dataset(positions=True)`),
    else in the pipeline's order. Batches go through `predict_on_batch` (one traced function):
    an eager call runs the BiLSTMs step by step in Python, 5-20x slower on CPU."""
    y_true, y_prob, pos = [], [], []
    for x, y, _ in ds:
        out = model.predict_on_batch(x)
        y_prob.append(np.asarray(out["emotion"]))
        y_true.append(np.argmax(np.asarray(y["emotion"]), -1))
        if "position" in y:
            pos.append(np.asarray(y["position"]).astype(int))
    y_true, y_prob = np.concatenate(y_true), np.concatenate(y_prob)
    if pos:
        order = np.argsort(np.concatenate(pos))
        y_true, y_prob = y_true[order], y_prob[order]
    return y_true, y_prob


def write_predictions(fold_dir, manifest, ids, scores, label_names, name="predictions.csv"):
    """Per test utterance (`ids`, in order): utterance_id, speaker, emotion, predicted and one
    `score_<label>` column per class (probabilities), to `fold_dir/predictions.csv`
    (atomically); the table every system writes, which `experiments/late_fusion.py` reads."""
    import pandas as pd

    rows = manifest.set_index("utterance_id").loc[list(ids)]
    table = pd.DataFrame({"utterance_id": list(ids), "speaker": rows["speaker"].to_numpy(),
                          "emotion": rows["emotion"].to_numpy(),
                          "predicted": np.asarray(label_names, object)[np.argmax(scores, 1)]})
    for k, n in enumerate(label_names):
        table[f"score_{n}"] = np.asarray(scores)[:, k]
    return write_csv(table, os.path.join(fold_dir, name), index=False, float_format="%.6g")


# -- folds --------------------------------------------------------------------------------------
def finished_fold(cfg, fold_dir):
    """The saved test metrics of a finished fold (`fold_dir/metrics.json`) when resuming, else None."""
    done = os.path.join(fold_dir, "metrics.json")
    if cfg.train.resume and os.path.exists(done):
        return read_json(done)
    return None


def run_folds(cfg, out, folds, train_one, load_first):
    """The fold loop every system shares: train each fold, skip the finished ones on resume.

    `train_one(fold, fold_dir)` trains and tests one fold and returns `(model, metrics)`;
    the metrics are written (atomically) to `fold_dir/metrics.json`, which marks the fold
    finished. `load_first(fold_dir)` rebuilds the first fold's model when that fold was
    finished by an earlier run (the export uses the first fold's model). Returns
    `(list of the folds' metrics, first fold's model or None)`. Writes the folds, utterance by
    utterance, to `out/folds.json` (`protocol.folds_file` reuses them). With `train.select`
    "last" or "average" nothing is chosen on a fold's development utterances, so they are
    trained on as well (its history's `val_` columns are then on training data).
    """
    p = cfg.protocol
    write_json(folds_to_json(folds, protocol=p.name, group={"loso": "speaker", "loso_session": "session"}.get(
        p.name, p.group), corpus=cfg.data.corpus, folds_file=p.folds_file), os.path.join(out, "folds.json"))
    results, first = [], None
    if cfg.train.select != "best":  # nothing is chosen on the development set: train on it too
        folds = [dataclasses.replace(f, train=list(f.train) + list(f.dev)) for f in folds]
    for i, fold in enumerate(folds):
        fold_dir = os.path.join(out, "folds", fold.name)
        finished = finished_fold(cfg, fold_dir)
        if finished:
            results.append(finished)
            if i == 0:
                first = load_first(fold_dir)
            continue
        print(f"fold {i + 1}/{len(folds)} {fold.name}: train {len(fold.train)}, dev {len(fold.dev)}, test {len(fold.test)}")
        os.makedirs(fold_dir, exist_ok=True)
        start = time.time()
        model, res = train_one(fold, fold_dir)
        res["seconds"] = round(time.time() - start, 1)  # the invocation that finished the fold
        write_json(res, os.path.join(fold_dir, "metrics.json"))
        results.append(res)
        if i == 0:
            first = model
    return results, first


def score_unseen(cfg, fold_dir, unseens, predict, label_names):
    """One fold's model on each unseen corpus (`data.eval_corpora`, `data.Unseen`):
    `predict(unseen)` → class probabilities `(len(unseen.scored), K)` in that order: every
    utterance, labelled or not. Writes them all to `fold_dir/unseen/<name>/predictions.csv`
    (`emotion`: the corpus's own label, empty when it has none); returns `{name: metrics}` over
    the utterances of the model's labels (WA, UA, macro-F1, confusion; none of these when it has
    no such utterance), with `n` of those, `scored`, the labels it lacks, the utterances of other
    labels left out, its normalisation and adaptation."""
    out = {}
    for u in unseens:
        scored = u.scored
        probs = np.asarray(predict(u))
        if len(probs) != len(scored):
            raise ValueError(f"unseen {u.name}: {len(probs)} predictions for {len(scored)} utterances")
        known = scored["emotion"].isin(label_names).to_numpy()
        y = scored["emotion"][known].map(list(label_names).index).to_numpy()
        res = M.classification_metrics(y, probs[known].argmax(1), label_names) if known.any() else {"n": 0}
        res.update(u.about(), scored=len(scored), normalization=cfg.data.eval_normalization or cfg.data.normalization,
                   adapt=cfg.data.eval_adapt)
        os.makedirs(os.path.join(fold_dir, "unseen", u.name), exist_ok=True)
        write_predictions(os.path.join(fold_dir, "unseen", u.name), scored, scored["utterance_id"], probs, label_names)
        out[u.name] = res
    return out


def predict_unseen(cfg, model, unseen, train_stats, label_names):
    """A features → emotion model's probabilities on an unseen corpus's utterances
    (`unseen.scored`; `score_unseen`'s `predict`), its features normalised by
    `data.eval_normalizer` against `train_stats`."""
    ids = unseen.scored["utterance_id"].tolist()
    targets = np.zeros((len(ids), len(label_names)), np.float32)  # unused: predicting needs no labels
    ds = classification_dataset(unseen.records, cfg, ids, targets, positions=True,
                                normalize=eval_normalizer(cfg, unseen.records, train_stats))
    return predict_adapted(cfg, model, ds)


def predict_adapted(cfg, model, ds):
    """`predict_labels`'s probabilities over an unseen corpus's dataset `ds`; with
    `data.eval_adapt=batchnorm`, by the model with its batch-normalisation statistics
    re-estimated on `ds`'s utterances (`keras_ser.training.adapt`; the model is restored after)."""
    if cfg.data.eval_adapt != "batchnorm":
        return predict_labels(model, ds)[1]
    from keras_ser.training import adapt

    names = list(model.input.keys())
    with adapt.adapted_batchnorm(model, lambda: adapt.unpadded((x for x, _, _ in ds), names)):
        return predict_labels(model, ds)[1]


def confusion_plot(out, res, label_names, name):
    """`plots/confusion_<name>.png` of a classification result, titled with its WA and UA."""
    plot_confusion(res["confusion"], label_names, os.path.join(out, "plots", f"confusion_{name}.png"),
                   f"{name}: WA {res['wa']:.3f} UA {res['ua']:.3f}")


# -- the tail of a run ------------------------------------------------------------------------
@dataclasses.dataclass
class Export:
    """What a run exports: the model, its frontend (None: a model of one feature vector per
    utterance), and what `keras_ser.json` says of its heads."""

    model: typing.Any
    frontend: typing.Any
    metadata: dict


def finish(cfg, out, results, label_names, means=("wa", "ua", "macro_f1"), extra=None, export=None,
           corpus=None, name=None, data=None):
    """The tail every run shares: the summary (`mean`: mean ± sd over the folds; `pooled`: WA
    and UA of all folds' test parts pooled), the pooled confusion plot, the export, the headline
    and what was left out. Returns the summary (the runner writes it to metrics.json).

    Args:
        results: the folds' metrics (`run_folds`).
        means: metric names to average over the folds: top-level keys of each fold's metrics,
            or `(name, function of a fold's metrics)` pairs.
        extra: system-specific summary entries (before `mean`).
        export: an `Export`, or None (export disabled, or nothing exportable).
        corpus, name: the corpus and the system as the summary and headline name them
            (defaults: `data.corpus`, `system`).
        data: the run's `RunData`: its skips go to the summary (`skipped`: count, reason and
            an example per stage and reason) and are printed, every one counted.
    """
    pick = [(m, lambda r, m=m: r[m]) if isinstance(m, str) else m for m in means]
    summary = {"system": cfg.system, "corpus": corpus or cfg.data.corpus, "protocol": cfg.protocol.name,
               "seed": cfg.seed, "folds_run": len(results), "labels": list(label_names), **(extra or {}),
               "mean": {m: M.mean_sd([f(r) for r in results]) for m, f in pick}, "folds": results}
    if results and all("seconds" in r for r in results):  # over every invocation (`seconds`: this one)
        summary["fold_seconds"] = round(sum(r["seconds"] for r in results), 1)
    if data is not None:
        summary["skipped"] = data.summary()
    unseen = [r["unseen"] for r in results if "unseen" in r]
    classified = all("missing_labels" in v for u in unseen for v in u.values())  # StrengthNet reports its own
    if unseen and len(unseen) == len(results) and classified:  # every fold's model on every unseen corpus
        summary["unseen"] = {}
        for corpus_name in unseen[0]:
            per = [u[corpus_name] for u in unseen]
            entry = summary["unseen"][corpus_name] = {
                "models": len(per), "n": per[0]["n"], "scored": per[0].get("scored"),
                "missing_labels": per[0]["missing_labels"], "left_out": per[0]["left_out"],
                "normalization": per[0]["normalization"], "adapt": per[0].get("adapt")}
            if per[0]["n"]:
                entry["mean"] = {m: M.mean_sd([p[m] for p in per]) for m in ("wa", "ua", "macro_f1")}
                entry["pooled"] = M.pooled_metrics(np.sum([np.asarray(p["confusion"]) for p in per], axis=0))
    if results and all("confusion" in r for r in results):
        total = np.sum([np.asarray(r["confusion"]) for r in results], axis=0)
        summary["pooled"] = M.pooled_metrics(total)
        wa = summary["mean"].get("wa", {}).get("mean")
        plot_confusion(total, label_names, os.path.join(out, "plots", "confusion_all.png"),
                       "all folds" + (f": WA {wa:.3f}" if wa is not None else ""))
    if cfg.export.enabled and export is not None:
        base = os.path.join(out, "export", cfg.export.name or cfg.system)
        if export.frontend is None:  # one feature vector per utterance (the functionals reference)
            summary["export"] = export_vector_model(export.model, base, cfg.export.version, list(label_names),
                                                    export.metadata)
        else:
            summary["export"] = export_model(export.model, base, version=cfg.export.version, frontend=export.frontend,
                                             label_names=list(label_names), metadata=export.metadata,
                                             normalization=cfg.data.normalization, trim_db=cfg.data.trim_silence)
    shown = ", ".join(f"{m} {summary['mean'][m]['mean']:.3f} ± {summary['mean'][m]['sd']:.3f}" for m, _ in pick[:3])
    print(f"{name or cfg.system} on {summary['corpus']} ({cfg.protocol.name}, {len(results)} folds): {shown}")
    for corpus_name, u in summary.get("unseen", {}).items():
        scores = (f"WA {u['mean']['wa']['mean']:.3f} ± {u['mean']['wa']['sd']:.3f}, "
                  f"UA {u['mean']['ua']['mean']:.3f} ± {u['mean']['ua']['sd']:.3f}" if "mean" in u
                  else f"{u['scored']} utterances predicted, none of the model's labels to score")
        print(f"  unseen {corpus_name} ({u['models']} fold models, {u['normalization']} normalisation): {scores}"
              + (f"; lacks {', '.join(u['missing_labels'])}" if u["missing_labels"] and "mean" in u else ""))
    for s in summary.get("skipped", []):
        print(f"  left out ({s['stage']}): {s['count']} x {s['reason']} (e.g. {s['example']})")
    return summary
