"""The one entry point of a training run.

    from keras_ser.config import load_config
    from keras_ser.training.runner import run
    summary = run(load_config("mlee/synthetic", ["data.synthetic_size=tiny", "train.epochs=2"]))

`run` checks the config against the system's model builders before any data is read, writes
`config.yaml`, dispatches to the system through the registry (never by importing it), and
writes the summary to `metrics.json`. The only process-wide state it touches is what the config
asks for by name: `train.deterministic` (TensorFlow's op determinism, which has no undo) and, for
the duration of the run, `train.mixed_precision` (Keras's dtype policy, restored after).
Warning filters and log filters are the console scripts' business (`keras_ser.cli`).
"""

import inspect
import os
import time

from keras_ser.audio.frontends import get_frontend_config
from keras_ser.config import save_config
from keras_ser.errors import ConfigError
from keras_ser.layers import SpecAugment
from keras_ser.training import loop, registry
from keras_ser.utils import write_json

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
    spec = cfg.model.params.get("spec_augment")
    if spec is not None:
        takes = [n for n in inspect.signature(SpecAugment.__init__).parameters if n not in ("self", "kwargs")]
        if not isinstance(spec, dict) or set(spec) - set(takes):
            raise ConfigError(f"model.params.spec_augment: {spec!r} is not a mapping of {', '.join(takes)}")
    norm = cfg.model.params.get("utterance_norm")
    if norm not in (None, "mean", "meanvar"):
        raise ConfigError(f"model.params.utterance_norm: {norm!r} is not one of null, 'mean', 'meanvar'")
    loop.model_params(cfg, system.frontend_params(cfg, get_frontend_config(cfg.data.frontend)))
    if system.check is not None:
        system.check(cfg)


def run(cfg, callbacks=()):
    """Run a whole config; returns the summary written to `<output_dir>/metrics.json`.

    `callbacks` are extra Keras callbacks given to every fit of the run."""
    system = registry.get(cfg.system)
    check_model_params(cfg)
    out = cfg.output_dir or default_output_dir(cfg)
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    save_config(cfg, os.path.join(out, "config.yaml"))
    if cfg.train.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # process-wide; TensorFlow has no public undo
    start = time.time()
    with loop.precision(cfg):
        summary = system.run(cfg, out, callbacks)
    summary["seconds"] = round(time.time() - start, 1)
    write_json(summary, os.path.join(out, "metrics.json"))
    return summary
