"""The one entry point of a training run.

    from keras_ser.config import load_config
    from keras_ser.training.runner import run
    summary = run(load_config("mlee/synthetic", ["data.synthetic_size=tiny", "train.epochs=2"]))

`run` checks the config against the system's model builders before any data is read, loads
the corpus (its labels checked against `data.emotions`), refuses to resume a run folder that
holds another config's run (`run.json`: the config's fingerprint), writes `config.yaml`,
dispatches to the system through the registry (never by importing it), and writes the summary
to `metrics.json`. The only process-wide state it touches is what the config
asks for by name: `train.deterministic` (TensorFlow's op determinism, which has no undo) and, for
the duration of the run, `train.mixed_precision` (Keras's dtype policy, restored after).
Warning filters and log filters are the console scripts' business (`keras_ser.cli`).
"""

import inspect
import os
import time

from keras_ser import __version__
from keras_ser.audio.frontends import get_frontend_config
from keras_ser.config import RunConfig, save_config
from keras_ser.corpora.manifest import content_hash
from keras_ser.errors import ConfigError
from keras_ser.layers import ChannelAugment, SpecAugment
from keras_ser.training import data, loop, registry, workers
from keras_ser.utils import read_json, write_json

# Builder arguments a run sets itself (from the data, the stage or the fold): `model.params`
# may not name them. Those that follow from the frontend are each system's `frontend_params`.
SET_BY_THE_RUN = frozenset({"num_classes", "feature_dim", "mean", "std", "segment_frames", "vocab_size",
                            "embeddings", "train_embeddings", "activation", "encoder", "encoder_name", "name",
                            "kind", "return_attention"})


def default_output_dir(cfg):
    return os.path.join("runs", f"{cfg.system}-{cfg.data.corpus}")


def check_model_params(cfg):
    """Raise ConfigError, before any data is read, for `model.params` keys that the run's model
    does not take (a typo would otherwise surface as a TypeError after feature extraction), for
    malformed SpecAugment or utterance-normalisation settings, and for values that contradict
    the frontend (`System.frontend_params`)."""
    system = registry.get(cfg.system)
    known = set()
    for builder in system.builders(cfg):
        known |= {n for n, p in inspect.signature(builder).parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    known -= SET_BY_THE_RUN
    unknown = sorted(set(cfg.model.params) - known)
    if unknown:
        raise ConfigError(f"model.params: {', '.join(map(repr, unknown))} not taken by the {cfg.model.name} model; "
                          f"it takes {', '.join(sorted(known))}")
    for key, layer in (("spec_augment", SpecAugment), ("channel_augment", ChannelAugment)):
        spec = cfg.model.params.get(key)
        if spec is not None:
            takes = [n for n in inspect.signature(layer.__init__).parameters if n not in ("self", "kwargs")]
            if not isinstance(spec, dict) or set(spec) - set(takes):
                raise ConfigError(f"model.params.{key}: {spec!r} is not a mapping of {', '.join(takes)}")
            try:  # values out of range, before any data is read
                built = layer(**spec)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"model.params.{key}: {e}") from None
            if key == "channel_augment" and cfg.data.normalization != "train" and max(built.gain, built.shape) > 0.5:
                print(f"warning: model.params.channel_augment (gain {built.gain}, shape {built.shape}) with "
                      f"data.normalization={cfg.data.normalization}: the features arrive standardised, so its curve is "
                      "in standard deviations of each band, not in log units (1.0 = 4.3 dB); at these sizes it buries "
                      "the signal (FG_CME on RAVDESS, per speaker: -15 WA). About a third, {gain: 0.3, shape: 0.15}, "
                      "was chosen for standardised features (docs/results/fg_cme.md)")
    norm = cfg.model.params.get("utterance_norm")
    if norm not in (None, "mean", "meanvar"):
        raise ConfigError(f"model.params.utterance_norm: {norm!r} is not one of null, 'mean', 'meanvar'")
    loop.model_params(cfg, system.frontend_params(cfg, get_frontend_config(cfg.data.frontend)))
    if system.check is not None:
        system.check(cfg)


# Config keys that change how a run is shown or where its files go, not what it computes: a run
# may be resumed with other values (e.g. more folds through protocol.max_folds).
COSMETIC = ("output_dir", "train.verbose", "train.resume", "data.num_workers", "data.records_dir", "data.autotune",
            "protocol.max_folds", "export.")


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("params", "forest", "loss_weights", "learning_rates"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fingerprint(cfg, manifest):
    """What a run computes from: the resolved config less `COSMETIC` keys, the corpus's content
    (`keras_ser.corpora.manifest.content_hash`) and the package version."""
    config = {k: v for k, v in _flat(cfg.to_dict()).items()
              if not any(k == c or (c.endswith(".") and k.startswith(c)) for c in COSMETIC)}
    return {"config": config, "corpus": content_hash(manifest), "keras_ser": __version__}


def _differences(old, new):
    """What differs between two fingerprints. A key the old run's config lacks, at its default
    now, is not a difference: it was added to keras_ser after that run, and a new key's default
    keeps what keras_ser did before (the rule for adding one), so the old run computed with it."""
    defaults = _flat(RunConfig().to_dict())
    then = old.get("config", {})
    out = [f"{k}: {repr(then[k]) if k in then else 'not a key of keras_ser'} then, "
           f"{repr(new['config'][k]) if k in new['config'] else 'not a key'} now"
           for k in sorted(set(then) | set(new["config"]))
           if then.get(k) != new["config"].get(k)
           and not (k not in then and k in defaults and new["config"].get(k) == defaults[k])]
    if old.get("corpus") != new["corpus"]:
        out.append("the corpus changed (its manifest, or an audio file's bytes)")
    if old.get("keras_ser") != new["keras_ser"]:
        out.append(f"keras_ser {old.get('keras_ser')} then, {new['keras_ser']} now")
    return out


def prepare_output(cfg, out, stamp, force_new=False):
    """Make `out` the folder of the run `stamp` (`fingerprint`). A folder holding a run of the
    same fingerprint is resumed (`train.resume`); one holding another run is an error naming
    what differs, unless `force_new` or `train.resume=false`, which keep the old run beside it as
    `<out>.previous-<time>` and start afresh."""
    path = os.path.join(out, "run.json")
    holds_run = any(os.path.exists(os.path.join(out, f)) for f in ("run.json", "folds", "metrics.json"))
    if holds_run and cfg.train.resume and not force_new:
        if not os.path.exists(path):
            raise ConfigError(f"output_dir {out} holds a run without run.json (an older keras_ser, or not a run "
                              "folder): it cannot be told to be this config's run; give another output_dir, or "
                              "--force-new to start over there (the old folder is kept beside it)")
        diff = _differences(read_json(path), stamp)
        if diff:
            raise ConfigError(f"output_dir {out} holds the run of another config, which resuming would mix "
                              f"with this one: {'; '.join(diff)}. Give another output_dir, or --force-new "
                              "(train.resume=false) to start over there (the old run is kept beside it)")
    elif holds_run:
        aside = f"{os.path.normpath(out)}.previous-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(out, aside)
        print(f"{out}: the earlier run there is kept as {aside}; starting afresh")
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    write_json(stamp, path)


def run(cfg, callbacks=(), force_new=False):
    """Run a whole config; returns the summary written to `<output_dir>/metrics.json`.

    Args:
        callbacks: extra Keras callbacks given to every fit of the run.
        force_new: start afresh in `output_dir` even when it holds another config's run (which
            is kept beside it as `<output_dir>.previous-<time>`).

    With `train.strategy=multi_worker` every worker runs this with the same config; the chief
    writes `output_dir`, the others a scratch copy of it (`keras_ser.training.workers`).
    """
    system = registry.get(cfg.system)
    check_model_params(cfg)
    task = workers.start(cfg)  # before any TensorFlow operation (multi_worker only)
    d = data.load(cfg)
    out = cfg.output_dir or default_output_dir(cfg)
    if task is None or task[2]:  # one machine, or the chief of several
        prepare_output(cfg, out, fingerprint(cfg, d.corpus), force_new)
        if task is not None:
            workers.barrier()
        return _run(cfg, system, out, d, callbacks)
    workers.barrier()  # the chief has prepared its run folder: this worker's starts as a copy of it
    scratch = workers.scratch_dir(out)
    try:
        prepare_output(cfg, scratch, fingerprint(cfg, d.corpus), force_new=False)
        return _run(cfg, system, scratch, d, callbacks)
    finally:
        workers.finish_scratch(scratch)


def _run(cfg, system, out, d, callbacks):
    save_config(cfg, os.path.join(out, "config.yaml"))
    if cfg.train.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # process-wide; TensorFlow has no public undo
    start = time.time()
    with loop.precision(cfg):
        summary = system.run(cfg, out, d, callbacks)
    summary["seconds"] = round(time.time() - start, 1)
    write_json(summary, os.path.join(out, "metrics.json"))
    return summary
