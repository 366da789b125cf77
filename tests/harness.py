"""One test harness for keras_ser's layers and models (in the spirit of keras-hub's
`TestCase.run_layer_test` / `run_backbone_test`): a test file gives only init arguments and
inputs, and the harness checks, for each case,

    config       `from_config(get_config())` rebuilds it (same config for a layer; same
                 outputs with the same weights for a model)
    .keras       `save` → `load_model` gives the same outputs
    padding      a batch padded with zeros past each example's length gives, for every
                 example, what the example alone gives (outputs with a time axis compared on
                 the real part, and zero past it where the case says so)
    export       `model.export` → reloaded in a fresh process that never imports keras_ser →
                 the same outputs (`check_exports`: one process for all of a file's cases)

    CASES = [layer_case("masked_max", MaskedMax, {}, {"x": [a, b], "n": ...}, call=..., ...),
             model_case("strengthnet", build_strengthnet, {...}, examples, ...)]

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
    def test_case(case, tmp_path):
        run_case(case, tmp_path)

    def test_exports_reload_without_keras_ser(tmp_path):
        check_exports(CASES, tmp_path)

An example is a dict of unbatched NumPy arrays (a scalar length is a 0-d array). `time` maps
an input to where its length comes from: the name of another input (`"num_frames"`) or `None`
(its own first axis). `time_outputs` maps an output to `[(axis, length of example), ...]`.
"""

import dataclasses
import json
import os
import subprocess
import sys
import typing

import numpy as np

# A fresh interpreter, without keras_ser: reload each export and print its outputs.
RELOAD = r"""
import json, sys
import numpy as np, tensorflow as tf
cases = json.loads(sys.argv[1])
out = {}
for name, path, npz in cases:
    d = np.load(npz)
    fn = tf.saved_model.load(path).signatures["serving_default"]
    res = fn(**{k: tf.constant(d[k]) for k in d.files})
    out[name] = {k: np.asarray(v).astype("float64").tolist() for k, v in res.items()}
assert "keras_ser" not in sys.modules
print(json.dumps(out))
"""


@dataclasses.dataclass
class Case:
    """A model to check (see the module docstring)."""

    name: str
    make: typing.Callable  # () → keras.Model with dict inputs and dict outputs
    examples: list
    time: dict = dataclasses.field(default_factory=dict)
    time_outputs: dict = dataclasses.field(default_factory=dict)
    zero_past_length: tuple = ()  # outputs that must be exactly 0 past each example's length
    layer: typing.Optional[tuple] = None  # (class, init kwargs): also a layer config round trip
    atol: float = 1e-5
    check: typing.Optional[typing.Callable] = None  # more assertions: (outputs, batch) → None
    export: bool = True  # False for a variant of a builder whose graph another case exports


def _length(example, name, source):
    return int(example[source]) if source else len(example[name])


def pad_batch(examples, time, extra=7):
    """The examples as one batch, each time input zero-padded to the longest plus `extra`."""
    batch = {}
    for name in examples[0]:
        arrays = [np.asarray(e[name]) for e in examples]
        if name in time:
            t = max(len(a) for a in arrays) + extra
            out = np.zeros((len(arrays), t) + arrays[0].shape[1:], arrays[0].dtype)
            for i, a in enumerate(arrays):
                out[i, : len(a)] = a
            batch[name] = out
        else:
            batch[name] = np.stack(arrays)
    return batch


def single(example):
    return {k: np.asarray(v)[None] for k, v in example.items()}


def _outputs(model, batch):
    out = model(batch, training=False)
    return {k: np.asarray(v) for k, v in out.items()}


def _assert_same(a, b, atol, what):
    assert a.keys() == b.keys(), what
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=atol, err_msg=f"{what}: output {k}")


def run_case(case, tmp_path):
    """The config, .keras and padding checks of one case (the export check is `check_exports`)."""
    import keras

    import keras_ser.layers  # noqa: F401 (registers the layers)
    import keras_ser.models  # noqa: F401

    model = case.make()
    batch = pad_batch(case.examples, case.time)
    want = _outputs(model, batch)

    if case.layer is not None:
        cls, kwargs = case.layer
        layer = cls(**kwargs)
        again = cls.from_config(layer.get_config())
        assert again.get_config() == layer.get_config(), f"{case.name}: layer config round trip"
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    _assert_same(want, _outputs(clone, batch), case.atol, f"{case.name}: from_config")

    path = os.path.join(str(tmp_path), f"{case.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    _assert_same(want, _outputs(loaded, batch), case.atol, f"{case.name}: saved and loaded")

    for i, example in enumerate(case.examples):
        alone = _outputs(model, single(example))
        for k, v in alone.items():
            got = want[k][i]
            spans = case.time_outputs.get(k, [])
            index = [slice(None)] * got.ndim
            for axis, length in spans:
                index[axis - 1 if axis > 0 else axis] = slice(0, length(example))
            np.testing.assert_allclose(got[tuple(index)], v[0][tuple(index)], atol=case.atol,
                                       err_msg=f"{case.name}: example {i} padded vs alone, output {k}")
            if k in case.zero_past_length:
                rest = np.ones(got.shape, bool)
                rest[tuple(index)] = False
                assert np.all(got[rest] == 0), f"{case.name}: {k} is not 0 past example {i}'s length"
    if case.check is not None:
        case.check(want, batch)


def check_exports(cases, tmp_path):
    """Export every case's model (`model.export`), reload all of them in one fresh process that
    never imports keras_ser, and compare their `serving_default` outputs with the model's."""
    jobs, expected = [], {}
    cases = [c for c in cases if c.export]
    for case in cases:
        model = case.make()
        batch = pad_batch(case.examples, case.time)
        expected[case.name] = _outputs(model, batch)
        path = os.path.join(str(tmp_path), case.name)
        model.export(path, verbose=False)
        npz = os.path.join(str(tmp_path), f"{case.name}.npz")
        np.savez(npz, **batch)
        jobs.append([case.name, path, npz])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-c", RELOAD, json.dumps(jobs)], capture_output=True, text=True, env=env,
                         cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    for case in cases:
        assert set(got[case.name]) == set(expected[case.name]), f"{case.name}: export's output names"
        for k, v in expected[case.name].items():
            np.testing.assert_allclose(np.asarray(got[case.name][k]), v.astype("float64"), atol=case.atol,
                                       err_msg=f"{case.name}: export reloaded without keras_ser, output {k}")


def _input_spec(examples, name, time):
    import keras

    a = np.asarray(examples[0][name])
    shape = ((None,) + a.shape[1:]) if name in time else a.shape
    return keras.Input(shape, dtype=str(a.dtype), name=name)


def model_case(name, build, kwargs, examples, **options):
    """A case of a model builder: `build(**kwargs)` (seeded, so every call builds the same weights)."""
    import keras

    def make():
        keras.utils.set_random_seed(0)
        return build(**kwargs)

    return Case(name, make, examples, **options)


def layer_case(name, cls, kwargs, examples, call, **options):
    """A case of a layer: `call(layer, inputs)` inside a functional model over the examples'
    named inputs; its outputs (a tensor, a tuple or a dict) are named `out`, `out0`, ... ."""
    import keras

    def make():
        keras.utils.set_random_seed(0)
        inputs = {n: _input_spec(examples, n, options.get("time", {})) for n in examples[0]}
        out = call(cls(**kwargs), inputs)
        if isinstance(out, (tuple, list)):
            out = {f"out{i}": o for i, o in enumerate(out)}
        elif not isinstance(out, dict):
            out = {"out": out}
        return keras.Model(inputs, out, name=name)

    return Case(name, make, examples, layer=(cls, kwargs), **options)


def audio_examples(lengths, dim, seed=0):
    """Feature examples `{"features": (n, dim), "num_frames": n}` of the given lengths."""
    rng = np.random.default_rng(seed)
    return [{"features": rng.standard_normal((n, dim)).astype("float32"), "num_frames": np.int32(n)} for n in lengths]


def by_frames(example):
    return int(example["num_frames"])


# Options of a model case on `audio_examples`: features padded past num_frames.
AUDIO = {"time": {"features": "num_frames"}}
