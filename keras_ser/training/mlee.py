"""MLEE runs: the paper's recipes (Table 3) as stages, over leave-one-speaker-out folds.

    from keras_ser.config import load_config
    from keras_ser.training.runner import run
    run(load_config("mlee/synthetic", ["task.variant=fusion_soft", "task.train_set=all"]))

A recipe (`recipe`) is a list of stages; each learns hard, soft or existence targets with its own
learning rate, possibly on frozen encoders of earlier stages. Folds hold every utterance (the
"all" training set needs those without a target emotion); each stage keeps its usable ones, and
tests score the test speaker's utterances with a dominant label.

Beside the shared run folder (`keras_ser.training.loop`):
    folds/<fold>/<stage>/   each stage's fit (best.keras, state.json, history.csv, backup/)
    folds/<fold>/best.keras the final stage's model
"""

import dataclasses
import os

import keras
import numpy as np

from keras_ser.errors import ConfigError
from keras_ser.labels.emotion_targets import (
    class_weights,
    dominant_labels,
    make_targets,
    weighting_targets,
)
from keras_ser.losses import WeightedBinaryCrossentropy
from keras_ser.models.mlee import build_mlee_classifier, build_mlee_encoder, find_encoders
from keras_ser.training import data, loop
from keras_ser.training import metrics as M
from keras_ser.training.registry import System, register


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
    train_set = "dominant" if kind == "hard" else cfg.task.train_set
    return make_targets(manifest, label_names, kind, train_set, cfg.task.soft_alpha)


def make_datasets(rs, fold, cfg, targets):
    """Train, dev and test pipelines of one fold for a stage's `TargetSet`.

    Train and dev hold the fold's usable utterances (the stage's training set); test holds the
    test utterances with a dominant label and one-hot targets of it, whatever the stage learns.
    Returns `(train, dev, test, weights)`; weights are the class weights (see
    `keras_ser.labels.emotion_targets.class_weights`) or None.
    """
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
    return (data.classification_dataset(rs, cfg, train_ids, train_t, sw, shuffle=True, perturbed=True),
            data.classification_dataset(rs, cfg, dev_ids, dev.targets[dev.usable]) if dev_ids else None,
            data.classification_dataset(rs, cfg, test_ids, onehot, positions=True), weights)


def build_model(cfg, rs, stats, stage=None, encoders=None):
    """The model of a stage: a fresh MLEE classifier, or a new classifier on frozen encoders."""
    stage = stage or recipe(cfg)[-1]
    params = dict(cfg.model.params)
    if encoders:
        params = {k: v for k, v in params.items() if k in ("hidden_units",)}
    return build_mlee_classifier(num_classes=len(rs.label_names), feature_dim=rs.feature_dim,
                                 mean=stats.mean, std=stats.std(), activation=stage.activation,
                                 encoder=encoders or None, encoder_name=f"{stage.name}_encoder",
                                 name=f"mlee_{stage.name}", **params)


def compile_stage(model, stage, weights, cfg):
    if stage.kind == "existence":
        pos, neg = weights if weights is not None else (None, None)
        loss = WeightedBinaryCrossentropy(pos, neg)
        metrics = [keras.metrics.BinaryAccuracy(name="acc", threshold=0.5)]
    else:
        loss = keras.losses.CategoricalCrossentropy()
        metrics = [keras.metrics.CategoricalAccuracy(name="wa")]
    model.compile(optimizer=loop.make_optimizer(cfg, stage.learning_rate), loss={"emotion": loss},
                  metrics={"emotion": metrics}, jit_compile=cfg.train.jit_compile)
    return model


def train_stage(cfg, rs, fold, stage, stage_dir, targets, stats, encoders=None, callbacks=()):
    """Train one stage of one fold (resuming if interrupted); returns `(best model, class
    weights or None)` (None also for a stage finished by an earlier run)."""
    if loop.finished_stage(cfg, stage_dir):
        return loop.load_model(os.path.join(stage_dir, "best.keras")), None
    train_ds, dev_ds, _, weights = make_datasets(rs, fold, cfg, targets)
    keras.utils.set_random_seed(cfg.seed)
    with loop.strategy(cfg.train.strategy).scope():
        model = compile_stage(build_model(cfg, rs, stats, stage, encoders), stage, weights, cfg)
    return loop.fit(model, train_ds, dev_ds, stage_dir, cfg, callbacks), weights


def train_fold(cfg, rs, fold, fold_dir, manifest, callbacks=(), unseens=()):
    """Run the recipe's stages on one fold; returns (final model, test metrics).

    Stage `s` lives in `fold_dir/<s>/`; the final model is also saved as `fold_dir/best.keras`.
    Test metrics use the test fold's dominant labels; an existence model decides by the argmax
    of its existence probabilities.
    """
    stats = data.training_stats(rs, cfg, fold.train)
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
    loop.save_model(model, os.path.join(fold_dir, "best.keras"))
    targets = stage_targets(cfg, manifest, rs.label_names, "hard")
    _, _, test_ds, _ = make_datasets(rs, fold, cfg, targets)
    y_true, y_prob = loop.predict_labels(model, test_ds)
    test = targets.subset(fold.test)
    loop.write_predictions(fold_dir, manifest, [u for u, k in zip(test.ids, test.dominant) if k >= 0], y_prob,
                           rs.label_names)
    result = M.classification_metrics(y_true, y_prob.argmax(-1), rs.label_names)
    if unseens:
        result["unseen"] = loop.score_unseen(cfg, fold_dir, unseens, lambda u: loop.predict_unseen(
            cfg, model, u, stats, rs.label_names), rs.label_names)
    result.update(fold=fold.name, variant=cfg.task.variant, train_set=cfg.task.train_set, test_dominant=len(y_true),
                  class_weights=all_weights or None, **fold.to_dict())
    return model, result


def run(cfg, out, d, callbacks=()):
    manifest, rs = d.manifest, d.records
    folds = data.fold_list(cfg, manifest)  # every utterance: see the module docstring
    unseens = [data.Unseen(cfg, e) for e in cfg.data.eval_corpora]

    def train_one(fold, fold_dir):
        model, res = train_fold(cfg, rs, fold, fold_dir, manifest, callbacks, unseens)
        loop.confusion_plot(out, res, rs.label_names, fold.name)
        print(f"fold {fold.name}: WA {res['wa']:.3f} UA {res['ua']:.3f} macro-F1 {res['macro_f1']:.3f}")
        return model, res

    results, first = loop.run_folds(cfg, out, folds, train_one,
                                    lambda fold_dir: loop.load_model(os.path.join(fold_dir, "best.keras")))
    head = "existence" if recipe(cfg)[-1].kind == "existence" else "probabilities"
    export = None if first is None else loop.Export(first, rs.frontend, {"variant": cfg.task.variant, "emotion_head": head})
    differs = dominant_differs(manifest, rs.label_names)
    if differs["count"]:
        print(f"  scored on the annotators' majority label (MLEE's dominant label), which differs from the corpus's "
              f"emotion on {differs['count']} of its {differs['of']} utterances of {', '.join(rs.label_names)}: "
              "not comparable with a system scored on the corpus's emotion on the same folds")
    return loop.finish(cfg, out, results, rs.label_names, extra={"variant": cfg.task.variant,
                                                                 "train_set": cfg.task.train_set,
                                                                 "dominant_differs": differs}, export=export, data=d)


def dominant_differs(manifest, label_names):
    """`{"count", "of"}`: of the utterances whose corpus emotion is one of `label_names`, how many
    have another dominant label, or none (a tie, or a majority for another emotion). MLEE trains
    and scores on the dominant label: the annotators' majority where a corpus keeps several
    annotators' labels (IEMOCAP, the synthetic corpus), the corpus's one label elsewhere (count
    0). A count above 0 means its in-corpus WA / UA are not those of the corpus's emotion labels,
    which every other system (and the reference) is scored on."""
    m = manifest[manifest["emotion"].isin(label_names)]
    anns = m["annotations"].tolist() if "annotations" in m else [None] * len(m)
    dominant = dominant_labels(anns, label_names, m["emotion"].tolist())
    emotion = np.array([list(label_names).index(e) for e in m["emotion"]], np.int64)
    return {"count": int((dominant != emotion).sum()), "of": int(len(m))}


def builders(cfg):
    """The classifier passes the arguments it does not take to its encoder."""
    return [build_mlee_classifier, build_mlee_encoder]


def check(cfg):
    if cfg.model.name != "mlee":
        raise ConfigError(f"model.name: the MLEE system builds model 'mlee', got {cfg.model.name!r}")


register(System("mlee", run, builders, check=check))
