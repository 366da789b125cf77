"""Typed run configuration shared by the CLI, the notebooks and saved runs.

A run config is nested dataclasses; YAML presets live in `keras_ser/configs/<system>/<corpus>.yaml`.
`load_config("mlee/synthetic", ["train.epochs=3"])` resolves a preset (or a YAML path), applies
`key=value` overrides (values parsed as YAML), and validates: unknown keys and missing required
values raise `ConfigError` naming the key. `save_config` writes the resolved config beside a run.
This module does not import TensorFlow.
"""

import dataclasses
import os
import typing

import yaml

from keras_ser.audio.frontends import PRESETS
from keras_ser.errors import ConfigError
from keras_ser.training.registry import names as system_names
from keras_ser.utils import write_text

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


@dataclasses.dataclass
class DataConfig:
    """corpus: one of keras_ser.corpora.LOADERS. root: its folder (not needed for "synthetic"); for
    corpus "manifest", the JSON-lines manifest file of your own corpus (docs/data.md).
    synthetic_size: "tiny", "default" or "large". emotions: the label set (others are excluded from
    training on dominant targets). frontend: a feature preset. speed_perturb: extra training
    copies (e.g. [0.9, 1.1]). records_dir: where the records go (default: a cache folder).
    max_frames: crop training utterances to this many frames (None: no crop).
    num_workers: processes for feature extraction (records of less than 30 minutes of audio are
    written in the run's own process: starting the workers costs more than they save,
    docs/benchmarks.md). fuse: more training corpora, each
    `{corpus: NAME, root: DIR}` (domain fusion: the union is trained on; each corpus is split on
    its own). eval_corpora: unseen corpora `{corpus, root}`, used for testing only.
    autotune: let tf.data's autotuner size the pipeline's parallelism and buffers. Off by
    default: with it, destroying a finished iterator (Keras does so at every epoch's
    evaluation) waited for the autotuner's thread, up to 100 s an epoch on CPU
    (docs/benchmarks.md). trim_silence: trim leading and trailing audio quieter than this many
    dB below the utterance's peak before features are computed (`librosa.effects.trim`; e.g. 30),
    or null (the papers). eval_normalization: how the unseen corpora of `eval_corpora` are
    standardised when `normalization` is "train": "train" (the training statistics, the default),
    "corpus" (the unseen corpus's own statistics, labels unused) or "speaker" (each of its
    speakers' own); with speaker or utterance normalisation the unseen corpus gets the same.
    eval_adapt: null, or "batchnorm": before an unseen corpus is scored, the model's batch-
    normalisation statistics are re-estimated on that corpus's own audio (AdaBN; no labels used;
    `keras_ser.training.adapt`; MLEE and FG_CME's cnn_pool, the models with batch normalisation),
    or "self_training" (the reference, `system: functionals`): the classifier is refitted with
    its own most confident predictions on every utterance of the unseen corpus, whatever its
    emotion, labels unused (`functionals.self_training`; transductive: it uses the test corpus's
    unlabelled audio).
    normalization: how features are standardised: "train" (the training
    split's statistics, the papers), "speaker" (each speaker's own mean and variance over all
    of that speaker's audio, labels unused, test speakers included: it uses the test speaker's
    unlabelled audio, and assumes each speaker is heard in several emotions; where a speaker is
    heard in one emotion only it subtracts the very signal, and the run warns when the training
    speakers' labels look so) or "utterance" (each utterance by its own frames; not for
    functionals). functionals: an openSMILE set (e.g. ComParE_2016) given to the network as a
    second input, one vector per utterance (an early-fusion hybrid with the reference; FG_CME's
    cnn_pool baseline and StrengthNet; not the papers'): extracted and cached as the reference system does,
    standardised per fold like the frames (the training split's scaler; with "speaker", each
    speaker's own statistics first; with "utterance", the training split's scaler, one vector
    having no statistics of its own). Such a model is not exported: its serving graph could not
    compute openSMILE functionals (export.enabled must be false)."""

    corpus: str = "synthetic"
    root: typing.Optional[str] = None
    synthetic_size: str = "default"
    seed: int = 0
    emotions: typing.List[str] = dataclasses.field(default_factory=lambda: ["neutral", "happy", "sad", "angry"])
    frontend: str = "mlee"
    speed_perturb: typing.List[float] = dataclasses.field(default_factory=list)
    records_dir: typing.Optional[str] = None
    max_frames: typing.Optional[int] = 1000
    num_workers: int = 2
    fuse: typing.List[typing.Dict[str, typing.Any]] = dataclasses.field(default_factory=list)
    eval_corpora: typing.List[typing.Dict[str, typing.Any]] = dataclasses.field(default_factory=list)
    autotune: bool = False
    normalization: str = "train"
    trim_silence: typing.Optional[float] = None
    eval_normalization: typing.Optional[str] = None
    eval_adapt: typing.Optional[str] = None
    functionals: typing.Optional[str] = None


@dataclasses.dataclass
class ModelConfig:
    """name: model builder ("mlee"). params: keyword arguments of that builder."""

    name: str = "mlee"
    params: typing.Dict[str, typing.Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainConfig:
    """Optimisation. strategy: "default" or "mirrored" (tf.distribute over the devices of one
    machine; batch_size is the global batch, split over the replicas; batch normalisation's moving
    statistics are averaged over them, `loop.SyncReplicaState`) or "multi_worker" (several
    machines, `TF_CONFIG` in each worker's environment; keras_ser.training.workers, docs/scale.md). mixed_precision: compute in float16 on a GPU
    (bfloat16 on a CPU) with float32 variables and heads, and loss scaling for float16.
    jit_compile: XLA; slower for training on this project's CPU (1.9x for EPR's fixed-shape
    VGG, 5.7x for MLEE's bucketed batches: docs/benchmarks.md); may help on GPUs when the
    bucketed shapes are few; slows the first steps.
    class_weights: inverse class frequency on the training fold. resume: continue an interrupted
    run from its last epoch checkpoint. deterministic: TensorFlow's op determinism
    (`tf.config.experimental.enable_op_determinism`) for the rest of the process, so that two
    runs with the same seed train the same weights (on the CPU: tested with EPR, checked with
    FG_CME); without it, two CPU runs differ from the first epoch.

    The recipe (the papers' presets keep the defaults; the `*_recipe` presets, documented as
    beyond the papers, change them): optimizer: "adam" or "adamw" (decoupled `weight_decay`).
    schedule: "constant" (the learning rate throughout; EPR adds its paper's decay) or
    "cosine" (decay to 0 over `epochs`, after `warmup_epochs` of linear warm-up). select:
    which weights are the model: "best" (the best development epoch, early stopping after
    `patience`; the papers), "last" (the last of a fixed number of epochs: nothing is chosen on
    a development set of one or two speakers) or "average" (the mean of the weights of the last
    `average_epochs` epochs, stochastic weight averaging; batch-norm statistics are averaged
    too, not recomputed). mixup: Beta(alpha, alpha) mixing of training batches (features and
    targets; the longer length is kept), 0 for none; not for models that take words or for
    StrengthNet's frame targets."""

    batch_size: int = 16
    epochs: int = 50
    learning_rate: float = 5e-4
    patience: int = 5
    class_weights: bool = True
    strategy: str = "default"
    mixed_precision: bool = False
    jit_compile: bool = False
    resume: bool = True
    verbose: int = 1
    deterministic: bool = False
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: int = 0
    select: str = "best"
    average_epochs: int = 5
    mixup: float = 0.0


TASK_VARIANTS = ("hard", "soft", "mlee_only", "pretrain_hard", "pretrain_soft", "fusion_hard", "fusion_soft")
SOFT_WEIGHTINGS = ("mass", "argmax")
TRAIN_SETS = ("dominant", "all")
SYNTHETIC_SIZES = ("tiny", "default", "large")  # keras_ser.corpora.synthetic.SIZES (tested)


@dataclasses.dataclass
class TaskConfig:
    """What a classifier learns (MLEE paper, Table 3). variant, one switch per row of the table:
    "hard" / "soft" (dominant-emotion classifier, softmax), "mlee_only" (sigmoid existence, the
    decision is the argmax of the existence probabilities), "pretrain_hard" / "pretrain_soft"
    (train MLEE, freeze its encoder, new classifier), "fusion_hard" / "fusion_soft" (dominant and
    MLEE encoders, both frozen, concatenated, new classifier). train_set: "dominant" (utterances
    with a majority label) or "all" (hard targets always use the dominant set). soft_alpha: the
    soft-target smoothing α. soft_weighting: how train.class_weights counts a soft target —
    "mass" (each class's weight is the inverse of its share of the target mass, and an example's
    weight is Σ_k w_k t_k) or "argmax" (an example counts for the class its target favours, ties
    shared, and its weight is that class's inverse frequency, as with hard targets); the paper says
    only "inverse class frequency", and the two agree on hard targets. On the synthetic corpus,
    "mass" leaves soft rows predicting the majority class (docs/results/mlee.md, MLEE).
    learning_rates: the recipe's stages other than the dominant one,
    which uses train.learning_rate (paper: 5e-4 dominant, 2e-4 MLEE flat start, 1e-4 fine-tuning,
    5e-5 fusion fine-tuning)."""

    variant: str = "hard"
    train_set: str = "dominant"
    soft_alpha: float = 0.75
    soft_weighting: str = "mass"
    learning_rates: typing.Dict[str, float] = dataclasses.field(
        default_factory=lambda: {"mlee": 2e-4, "finetune": 1e-4, "fusion": 5e-5})


@dataclasses.dataclass
class StrengthConfig:
    """Emotion-strength labels and losses (StrengthNet, PAPERS.md §1). labels: "ranking"
    (rank-SVMs on openSMILE functionals, the paper) or "manifest" (the corpus's own `strength`
    column, e.g. the synthetic corpus's truth). C, per ("speaker_emotion", original; or
    "emotion"), similar, normalise ("group", original; or "corpus"): see
    `keras_ser.labels.ranking.StrengthLabeler`. feature_set: openSMILE set. neutral: the reference
    category of the ranking pairs (not a StrengthNet class). loss_weights: per head; 0 drops a
    loss (the paper's ablations "w/o L_frame", "w/o L_cat"). intensity_threshold: predicted
    strength at or above it means "strong" (RAVDESS intensity agreement). monitor: what early
    stopping and the best checkpoint watch on the dev set: "strength_mae" (the paper: validation
    MAE of the utterance strength; the weighted total loss when the strength loss is off) or
    "loss" (the weighted total of every head's loss, so the emotion head counts too).
    rank_weight, rank_temperature, rank_margin: a pairwise ranking term added to the utterance
    strength's MAE (`keras_ser.losses.RankingMAE`: every pair of a batch whose labels differ by
    more than the margin, logistic loss on the predicted difference over the temperature); 0,
    the default, is the paper's plain MAE. Not in the paper."""

    labels: str = "ranking"
    C: float = 0.1
    per: str = "speaker_emotion"
    similar: bool = False
    normalise: str = "group"
    feature_set: str = "IS09"
    neutral: str = "neutral"
    loss_weights: typing.Dict[str, float] = dataclasses.field(
        default_factory=lambda: {"frame_strength": 1.0, "strength": 1.0, "emotion": 1.0})
    intensity_threshold: float = 0.5
    monitor: str = "strength_mae"
    rank_weight: float = 0.0
    rank_temperature: float = 0.05
    rank_margin: float = 0.0


EPR_REFINERIES = ("sepr", "pepr", "hard_dynamic", "soft_static")


@dataclasses.dataclass
class EprConfig:
    """Emotion profile refinery (EPR, PAPERS.md §3). segment_frames: frames per segment (32 =
    335 ms). segment_hop: frames between segment starts (1 = 10 ms, Emo-DB and SAVEE; 3 = 30 ms,
    CASIA). refinery: how stage t's segment labels come from stage t-1's posteriors p: "sepr" (p),
    "pepr" ((p + one-hot utterance label) / 2), "hard_dynamic" (one-hot argmax of p), "soft_static"
    (the utterance mean of p on every segment). stages: networks in the chain (stage 1 learns the
    utterance label on every segment; "VGG*5" in the paper is 5). inner_folds: k of the inner
    k-fold that gives every training segment its labels from a network that never saw it.
    lr_decay, lr_decay_epochs: learning rate ×lr_decay every lr_decay_epochs epochs (paper 0.8,
    2). percentiles: the profile statistics' percentiles. forest: scikit-learn
    RandomForestClassifier arguments (paper: defaults). shuffle_buffer: segments in the shuffle
    buffer."""

    segment_frames: int = 32
    segment_hop: int = 1
    refinery: str = "pepr"
    stages: int = 5
    inner_folds: int = 5
    lr_decay: float = 0.8
    lr_decay_epochs: int = 2
    percentiles: typing.List[float] = dataclasses.field(default_factory=lambda: [10.0, 25.0, 50.0, 75.0, 90.0])
    forest: typing.Dict[str, typing.Any] = dataclasses.field(default_factory=dict)
    shuffle_buffer: int = 16384
    dev_labels: str = "utterance"


FG_CME_MODELS = ("fg_cme", "cnn_lstm", "blstm_attention_audio", "blstm_attention_text", "utterance_concat",
                 "attention_fusion", "cnn_pool")
FG_CME_AUDIO = ("cnn_lstm", "blstm_attention_audio", "cnn_pool")  # the audio-only baselines


@dataclasses.dataclass
class FgCmeConfig:
    """Words for FG_CME (PAPERS.md §4) and its baselines. alignment: "given" (the corpus's word
    timings; an utterance without them is an error naming it), "auto" (given where present, else
    approximate, and the run reports how many), "approximate" (every utterance: words spread over
    the voiced region, the paper's alignment ablation) or "uniform" (words spread evenly over the
    whole utterance). embeddings: a GloVe-format text file (None: trainable from random).
    train_embeddings: fine-tune them. min_count: rarer training words are out of vocabulary.
    max_words: longer transcripts are an error (not cropped) beyond it. test_curve: also score
    the test fold after every epoch and report the best of those scores beside the honest one:
    what the original code reported (it chose the epoch on the test fold; PAPERS.md §4). A
    diagnostic for comparing with the paper; it never chooses the model."""

    alignment: str = "auto"
    embeddings: typing.Optional[str] = None
    train_embeddings: bool = True
    min_count: int = 1
    max_words: int = 128
    test_curve: bool = False


FUNCTIONAL_SETS = ("eGeMAPSv02", "ComParE_2016", "IS09", "IS10", "IS13", "emobase")
FUNCTIONAL_CLASSIFIERS = ("logreg", "linear_svm", "rbf_svm")


@dataclasses.dataclass
class FunctionalsConfig:
    """The openSMILE reference system (`system: functionals`). feature_set: an openSMILE set
    (eGeMAPSv02: 88, ComParE_2016: 6373, IS09: 384 functionals). classifier: "logreg"
    (scikit-learn LogisticRegression), "linear_svm" (LinearSVC) or "rbf_svm" (SVC). C: the
    inverse regularisation strength. class_weight: "balanced" (inverse class frequency on the
    training part) or null. gamma: the RBF kernel's (scikit-learn's "scale" by default).
    self_training: with `data.eval_adapt: self_training`, the share of each class's confident
    pseudo-labels added per round (one round per entry; `functionals.self_trained`)."""

    feature_set: str = "ComParE_2016"
    classifier: str = "logreg"
    C: float = 0.1
    class_weight: typing.Optional[str] = "balanced"
    gamma: typing.Any = "scale"
    max_iter: int = 3000
    self_training: typing.List[float] = dataclasses.field(default_factory=lambda: [0.2, 0.4, 0.6])


@dataclasses.dataclass
class ProtocolConfig:
    """name: "split", "loso", "loso_session" or "kfold". k: folds for kfold. max_folds: run only
    the first N folds (quick runs). group: for kfold/split, split by this column
    (speaker-independent). fractions: for split. dev: for loso and loso_session, "next" (the
    next speaker or session is the development set) or a fraction in (0, 1) of the training
    utterances (the development set then shares the training speakers; the test one never does).
    min_fold_utterances: a fold whose test set holds fewer utterances is an error naming it (a
    smaller development set, a warning) (a speaker with one utterance would otherwise give a one-utterance test fold whose
    WA, 0 or 1, is averaged in as an equal of the others). folds_file: the `folds.json` of an
    earlier run (every run writes one): its folds, utterance by utterance, instead of the
    protocol's, so that the rows of a table are scored on identical folds."""

    name: str = "loso"
    k: int = 10
    max_folds: typing.Optional[int] = None
    group: typing.Optional[str] = None
    fractions: typing.List[float] = dataclasses.field(default_factory=lambda: [0.8, 0.1, 0.1])
    dev: typing.Any = "next"
    seed: int = 0
    min_fold_utterances: int = 5
    folds_file: typing.Optional[str] = None


@dataclasses.dataclass
class ExportConfig:
    """Export the first fold's best model to `<output_dir>/export/<name>/<version>/`."""

    enabled: bool = True
    name: typing.Optional[str] = None
    version: int = 1


@dataclasses.dataclass
class RunConfig:
    system: str = "mlee"
    output_dir: typing.Optional[str] = None
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    strength: StrengthConfig = dataclasses.field(default_factory=StrengthConfig)
    epr: EprConfig = dataclasses.field(default_factory=EprConfig)
    fg_cme: FgCmeConfig = dataclasses.field(default_factory=FgCmeConfig)
    functionals: FunctionalsConfig = dataclasses.field(default_factory=FunctionalsConfig)
    protocol: ProtocolConfig = dataclasses.field(default_factory=ProtocolConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def to_dict(self):
        return dataclasses.asdict(self)


def _check_type(key, value, tp):
    origin = typing.get_origin(tp)
    if tp is typing.Any or value is None and (origin is typing.Union and type(None) in typing.get_args(tp)):
        return value
    if origin is typing.Union:
        for t in typing.get_args(tp):
            if t is type(None):
                continue
            try:
                return _check_type(key, value, t)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {tp}, got {value!r}")
    if origin in (list, typing.List):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp) or (typing.Any,)
        return [_check_type(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool) or tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    if tp in (str, float) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def _from_dict(cls, d, prefix=""):
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]!s} (known in {prefix or 'the top level'}: "
                          f"{', '.join(sorted(fields))})")
    kwargs = {}
    hints = typing.get_type_hints(cls)
    for name, value in d.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _from_dict(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(f"{prefix}{name}", value, tp)
    return cls(**kwargs)


def preset_path(name):
    """Path of a preset "system/corpus" (or a YAML file path)."""
    if name.endswith((".yaml", ".yml")) or os.path.sep in name and os.path.exists(name):
        if not os.path.exists(name):
            raise ConfigError(f"{name}: config file does not exist")
        return name
    path = os.path.join(CONFIG_DIR, *name.split("/")) + ".yaml"
    if not os.path.exists(path):
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
    return path


def list_presets():
    out = []
    for system in sorted(os.listdir(CONFIG_DIR)):
        d = os.path.join(CONFIG_DIR, system)
        if os.path.isdir(d):
            out += [f"{system}/{f[:-5]}" for f in sorted(os.listdir(d)) if f.endswith(".yaml")]
    return out


def apply_override(d, item):
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string; a number is meant
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    parts = key.strip().split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"override {key}: {p} is not a section")
    cur[parts[-1]] = value


def load_config(preset_or_path, overrides=()):
    """Resolve a preset or YAML file plus `key=value` overrides into a validated `RunConfig`."""
    path = preset_path(preset_or_path)
    with open(path) as f:
        try:
            d = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    for item in overrides:
        apply_override(d, item)
    cfg = _from_dict(RunConfig, d)
    validate(cfg)
    return cfg


def config_from_dict(d):
    cfg = _from_dict(RunConfig, d)
    validate(cfg)
    return cfg


def validate(cfg):
    # pandas: not at import time (`keras_ser-train --help` stays fast)
    from keras_ser.corpora import LOADERS

    check_ranges(cfg)
    if cfg.data.corpus not in LOADERS:
        raise ConfigError(f"data.corpus: unknown corpus {cfg.data.corpus!r}; known: {', '.join(LOADERS)}")
    if cfg.data.corpus != "synthetic" and not cfg.data.root:
        what = "the manifest file" if cfg.data.corpus == "manifest" else "the folder holding it"
        raise ConfigError(f"data.root is required for corpus {cfg.data.corpus!r} ({what})")
    if cfg.data.corpus == "manifest" and not os.path.isfile(cfg.data.root):
        raise ConfigError(f"data.root: {cfg.data.root} is not a manifest file (data.corpus: manifest)")
    if cfg.data.corpus == "synthetic" and cfg.data.synthetic_size not in SYNTHETIC_SIZES:
        raise ConfigError(f"data.synthetic_size: {cfg.data.synthetic_size!r} is not one of {', '.join(SYNTHETIC_SIZES)}")
    if cfg.data.frontend not in PRESETS:
        raise ConfigError(f"data.frontend: unknown preset {cfg.data.frontend!r}; known: {', '.join(PRESETS)}")
    ev = cfg.data.eval_normalization
    _one_of("data.eval_normalization", ev, (None, "train", "corpus", "speaker"))
    if ev not in (None, "train") and cfg.data.normalization != "train" and ev != cfg.data.normalization:
        raise ConfigError(f"data.eval_normalization: {ev!r}, but the model is trained with data.normalization="
                          f"{cfg.data.normalization}: unseen corpora get the same (leave eval_normalization out)")
    _one_of("data.normalization", cfg.data.normalization, ("train", "speaker", "utterance"))
    _one_of("data.eval_adapt", cfg.data.eval_adapt, (None, "batchnorm", "self_training"))
    if cfg.data.eval_adapt is not None:
        if not cfg.data.eval_corpora:
            raise ConfigError("data.eval_adapt: set, but there is no unseen corpus to adapt to (data.eval_corpora)")
        if cfg.data.eval_adapt == "self_training":
            if cfg.system != "functionals":
                raise ConfigError(f"data.eval_adapt=self_training: for the reference (system functionals), not "
                                  f"{cfg.system}")
            shares = cfg.functionals.self_training
            if not shares or not all(isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q <= 1 for q in shares):
                raise ConfigError(f"functionals.self_training: {shares!r} must list shares in (0, 1], one per round")
        elif not (cfg.system == "mlee" or (cfg.system == "fg_cme" and cfg.model.name == "cnn_pool")):
            raise ConfigError(f"data.eval_adapt=batchnorm: for MLEE and FG_CME's cnn_pool (the models with batch "
                              f"normalisation), not {cfg.system} {cfg.model.name}")
    if cfg.protocol.folds_file and not os.path.isfile(cfg.protocol.folds_file):
        raise ConfigError(f"protocol.folds_file: {cfg.protocol.folds_file} does not exist")
    fn = cfg.functionals
    _one_of("functionals.feature_set", fn.feature_set, FUNCTIONAL_SETS)
    _one_of("functionals.classifier", fn.classifier, FUNCTIONAL_CLASSIFIERS)
    _one_of("functionals.class_weight", fn.class_weight, (None, "balanced"))
    if cfg.data.functionals is not None:
        _one_of("data.functionals", cfg.data.functionals, FUNCTIONAL_SETS)
        if not ((cfg.system == "fg_cme" and cfg.model.name == "cnn_pool") or cfg.system == "strengthnet"):
            raise ConfigError(f"data.functionals: a second input of FG_CME's cnn_pool baseline and of StrengthNet "
                              f"only, not {cfg.system} {cfg.model.name} (system functionals: functionals.feature_set)")
        if cfg.export.enabled:
            raise ConfigError("data.functionals: a model with a functionals input cannot be exported (its serving graph "
                              "cannot compute openSMILE functionals); set export.enabled=false")
    if cfg.system == "functionals" and cfg.data.normalization == "utterance":
        raise ConfigError("data.normalization: utterance is not defined for one vector of functionals per utterance "
                          "(use train or speaker)")
    t = cfg.train
    for key, value, allowed in (("optimizer", t.optimizer, ("adam", "adamw")),
                                ("schedule", t.schedule, ("constant", "cosine")),
                                ("select", t.select, ("best", "last", "average"))):
        if value not in allowed:
            raise ConfigError(f"train.{key}: {value!r} is not one of {', '.join(allowed)}")
    if t.select == "average" and t.average_epochs > t.epochs:
        raise ConfigError(f"train.average_epochs: {t.average_epochs} is more than train.epochs={t.epochs}")
    if t.mixup and (cfg.system == "strengthnet" or (cfg.system == "fg_cme" and cfg.model.name not in FG_CME_AUDIO)):
        raise ConfigError(f"train.mixup: not for {cfg.system} {cfg.model.name} (frame targets or word inputs cannot "
                          "be mixed)")
    if cfg.data.trim_silence is not None and cfg.data.trim_silence <= 0:
        raise ConfigError(f"data.trim_silence: a level in dB below the peak (e.g. 30), or null; got "
                          f"{cfg.data.trim_silence}")
    if cfg.protocol.name not in ("split", "loso", "loso_session", "kfold"):
        raise ConfigError(f"protocol.name: unknown protocol {cfg.protocol.name!r}")
    dev = cfg.protocol.dev
    if dev != "next" and not (isinstance(dev, float) and 0 < dev < 1):
        raise ConfigError(f"protocol.dev: {dev!r} is not \"next\" or a fraction in (0, 1)")
    _one_of("train.strategy", cfg.train.strategy, ("default", "mirrored", "multi_worker"))
    if cfg.task.variant not in TASK_VARIANTS:
        raise ConfigError(f"task.variant: {cfg.task.variant!r} is not one of {', '.join(TASK_VARIANTS)}")
    if cfg.task.train_set not in TRAIN_SETS:
        raise ConfigError(f"task.train_set: {cfg.task.train_set!r} is not one of {', '.join(TRAIN_SETS)}")
    if cfg.task.soft_weighting not in SOFT_WEIGHTINGS:
        raise ConfigError(f"task.soft_weighting: {cfg.task.soft_weighting!r} is not one of {', '.join(SOFT_WEIGHTINGS)}")
    if cfg.task.soft_alpha < 0:
        raise ConfigError(f"task.soft_alpha: must be >= 0, got {cfg.task.soft_alpha}")
    missing = {"mlee", "finetune", "fusion"} - set(cfg.task.learning_rates)
    if missing:
        raise ConfigError(f"task.learning_rates: missing {', '.join(sorted(missing))}")
    if cfg.system not in system_names():
        raise ConfigError(f"system: unknown system {cfg.system!r}; known: {', '.join(system_names())}")
    if cfg.system == "fg_cme" and cfg.model.name not in FG_CME_MODELS:
        raise ConfigError(f"model.name: {cfg.model.name!r} is not one of {', '.join(FG_CME_MODELS)}")
    if cfg.fg_cme.alignment not in ("given", "auto", "approximate", "uniform"):
        raise ConfigError(f"fg_cme.alignment: {cfg.fg_cme.alignment!r} is not given, auto, approximate or uniform")
    if cfg.fg_cme.embeddings and not os.path.exists(cfg.fg_cme.embeddings):
        raise ConfigError(f"fg_cme.embeddings: {cfg.fg_cme.embeddings} does not exist")
    e = cfg.epr
    if e.refinery not in EPR_REFINERIES:
        raise ConfigError(f"epr.refinery: {e.refinery!r} is not one of {', '.join(EPR_REFINERIES)}")
    for key in ("segment_frames", "segment_hop", "stages"):
        if getattr(e, key) < 1:
            raise ConfigError(f"epr.{key}: must be >= 1, got {getattr(e, key)}")
    if e.dev_labels not in ("utterance", "refined"):
        raise ConfigError(f"epr.dev_labels: {e.dev_labels!r} is not utterance or refined")
    if e.inner_folds < 2:
        raise ConfigError(f"epr.inner_folds: must be >= 2 (out-of-fold labels), got {e.inner_folds}")
    if any(not 0 <= q <= 100 for q in e.percentiles):
        raise ConfigError(f"epr.percentiles: each must be in [0, 100], got {e.percentiles}")
    st = cfg.strength
    for key, value, allowed in (("labels", st.labels, ("ranking", "manifest")), ("per", st.per, ("speaker_emotion", "emotion")),
                                ("normalise", st.normalise, ("group", "corpus")),
                                ("monitor", st.monitor, ("strength_mae", "loss"))):
        if value not in allowed:
            raise ConfigError(f"strength.{key}: {value!r} is not one of {', '.join(allowed)}")
    unknown = set(st.loss_weights) - {"frame_strength", "strength", "emotion"}
    if unknown:
        raise ConfigError(f"strength.loss_weights: unknown head {sorted(unknown)[0]!r} (frame_strength, strength, emotion)")
    pooling = cfg.model.params.get("emotion_pooling", "last") if cfg.system == "strengthnet" else "last"
    if pooling not in ("last", "mean", "statistics"):
        raise ConfigError(f"model.params.emotion_pooling: {pooling!r} is not last, mean or statistics")
    for key in ("fuse", "eval_corpora"):
        for i, entry in enumerate(getattr(cfg.data, key)):
            if set(entry) - {"corpus", "root"} or "corpus" not in entry:
                raise ConfigError(f"data.{key}[{i}]: expected {{corpus: NAME, root: DIR}}, got {entry!r}")
            if entry["corpus"] not in LOADERS:
                raise ConfigError(f"data.{key}[{i}].corpus: unknown corpus {entry['corpus']!r}")
            if entry["corpus"] == "manifest" and not os.path.isfile(entry.get("root") or ""):
                raise ConfigError(f"data.{key}[{i}].root: {entry.get('root')} is not a manifest file")
    if len(cfg.data.emotions) < 2:
        raise ConfigError("data.emotions: need at least two labels")
    return cfg


def _one_of(key, value, allowed):
    if value not in allowed:
        names = ", ".join("null" if a is None else str(a) for a in allowed)
        raise ConfigError(f"{key}: {value!r} is not one of {names}")


def _range(key, value, low=None, high=None, low_open=False, allow_none=False):
    if value is None and allow_none:
        return
    if value is None or (low is not None and (value <= low if low_open else value < low)) or \
            (high is not None and value > high):
        bounds = [(f"> {low}" if low_open else f">= {low}") if low is not None else None,
                  f"<= {high}" if high is not None else None]
        raise ConfigError(f"{key}: must be {' and '.join(b for b in bounds if b)}"
                          f"{' (or null)' if allow_none else ''}, got {value!r}")


def check_ranges(cfg):
    """Numbers that cannot mean anything are errors naming the key (`train.epochs=0` would score
    and export an untrained model; `train.batch_size=0` would divide by zero deep inside)."""
    d, t, p, e, s, f = cfg.data, cfg.train, cfg.protocol, cfg.epr, cfg.strength, cfg.fg_cme
    for key, value, low in (("train.epochs", t.epochs, 1), ("train.batch_size", t.batch_size, 1),
                            ("train.patience", t.patience, 1), ("data.num_workers", d.num_workers, 0),
                            ("protocol.k", p.k, 2), ("protocol.min_fold_utterances", p.min_fold_utterances, 1),
                            ("export.version", cfg.export.version, 1), ("epr.lr_decay_epochs", e.lr_decay_epochs, 1),
                            ("epr.shuffle_buffer", e.shuffle_buffer, 1), ("fg_cme.min_count", f.min_count, 1),
                            ("fg_cme.max_words", f.max_words, 1)):
        _range(key, value, low)
    _range("train.learning_rate", t.learning_rate, 0, low_open=True)
    for name, lr in cfg.task.learning_rates.items():
        _range(f"task.learning_rates.{name}", lr, 0, low_open=True)
    _range("data.max_frames", d.max_frames, 1, allow_none=True)
    _range("protocol.max_folds", p.max_folds, 1, allow_none=True)
    _range("strength.C", s.C, 0, low_open=True)
    _range("functionals.C", cfg.functionals.C, 0, low_open=True)
    _range("functionals.max_iter", cfg.functionals.max_iter, 1)
    _range("strength.intensity_threshold", s.intensity_threshold, 0, 1)
    _range("strength.rank_weight", s.rank_weight, 0)
    _range("strength.rank_temperature", s.rank_temperature, 0, low_open=True)
    _range("strength.rank_margin", s.rank_margin, 0)
    _range("epr.lr_decay", e.lr_decay, 0, 1, low_open=True)
    _range("train.weight_decay", t.weight_decay, 0)
    _range("train.warmup_epochs", t.warmup_epochs, 0)
    _range("train.average_epochs", t.average_epochs, 1)
    _range("train.mixup", t.mixup, 0)
    for i, factor in enumerate(d.speed_perturb):
        _range(f"data.speed_perturb[{i}]", factor, 0.5, 2.0)
    if len(p.fractions) != 3 or any(x <= 0 for x in p.fractions) or abs(sum(p.fractions) - 1) > 1e-6:
        raise ConfigError(f"protocol.fractions: three positive fractions (train, dev, test) summing to 1, "
                          f"got {p.fractions}")
    dup = sorted({x for x in d.emotions if d.emotions.count(x) > 1})
    if dup:
        raise ConfigError(f"data.emotions: {dup[0]!r} is listed twice")


def save_config(cfg, path):
    write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), path)
