"""The training systems by name.

Each system module ends with `register(System(...))`; the runner finds a system with
`get(name)`, which imports a built-in system's module by its name in `BUILTIN` the first time it
is asked for. Nothing here imports a system, so the shared floor (`data`, `loop`, `runner`)
never does either: the systems import the floor, not the other way round.

A system of your own:

    from keras_ser.training.registry import System, register
    register(System("mine", run=my_run, builders=lambda cfg: [build_my_model]))

then `system: mine` in a config (the module that registers it must be imported first).
"""

import dataclasses
import importlib
import typing

from keras_ser.errors import ConfigError

BUILTIN = {
    "mlee": "keras_ser.training.mlee",
    "strengthnet": "keras_ser.training.strengthnet",
    "epr": "keras_ser.training.epr",
    "fg_cme": "keras_ser.training.fg_cme",
    "functionals": "keras_ser.training.functionals",
}
_SYSTEMS = {}


def _no_params(cfg, frontend):
    return {}


@dataclasses.dataclass(frozen=True)
class System:
    """A training system.

    Args:
        name: str. The config's `system`.
        run: `(cfg, out, data, callbacks) → summary dict`: the whole run into the folder `out`
            on `data`, the run's `keras_ser.training.data.RunData` (the corpus, loaded and
            checked by the runner; its records written on first use); `loop.finish` builds the
            summary; the runner adds the time and writes metrics.json.
        builders: `cfg → [functions]`: the model builders whose keyword arguments `model.params`
            may set (checked before any data is read).
        frontend_params: `(cfg, FrontendConfig) → dict`: builder arguments that follow from the
            records' frontend (frame hop and window, input layout); a `model.params` value
            that contradicts one is a ConfigError.
        check: optional `cfg → None`: more checks before any data is read (raise ConfigError).
    """

    name: str
    run: typing.Callable
    builders: typing.Callable
    frontend_params: typing.Callable = _no_params
    check: typing.Optional[typing.Callable] = None


def register(system):
    """Make `system` available under `system.name` (a later registration replaces it)."""
    _SYSTEMS[system.name] = system
    return system


def names():
    """The names of the built-in and registered systems."""
    return sorted(set(BUILTIN) | set(_SYSTEMS))


def get(name):
    """The system registered as `name` (a built-in one is imported on first use)."""
    if name not in _SYSTEMS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in _SYSTEMS:
        raise ConfigError(f"system: unknown system {name!r}; known: {', '.join(names())}")
    return _SYSTEMS[name]
