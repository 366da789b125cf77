import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_ser.config import load_config


def _cfg(tmp, tiny_corpus, *extra):
    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    return load_config("mlee/synthetic", [
        f"data.root={root}", "data.synthetic_size=tiny", f"data.records_dir={tmp}/records",
        "data.num_workers=0", "train.epochs=2", "train.verbose=0", "protocol.max_folds=1",
        "model.params={conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], lstm_units: 16, attention_units: 8}",
        f"output_dir={tmp}/run", *extra,
    ])


@pytest.fixture(scope="module")
def tiny_run(tiny_corpus, tmp_path_factory):
    from keras_ser.training.runner import run

    tmp = tmp_path_factory.mktemp("train")
    cfg = _cfg(tmp, tiny_corpus)
    return cfg, run(cfg)


def test_run_writes_the_promised_artefacts(tiny_run):
    cfg, summary = tiny_run
    out = cfg.output_dir
    for f in ("config.yaml", "metrics.json", "plots/confusion_all.png"):
        assert os.path.exists(os.path.join(out, f)), f
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["protocol"] == "loso" and m["corpus"] == "synthetic" and m["seed"] == 0
    assert set(m["mean"]["wa"]) == {"mean", "sd", "n"} and m["folds_run"] == 1
    fold = m["folds"][0]
    # The test speaker's utterances with a dominant (majority) annotator label are evaluated.
    assert np.sum(fold["confusion"]) == fold["n"] == fold["test_dominant"] <= fold["test"]
    assert os.path.exists(os.path.join(out, "export", "mlee", "1", "saved_model.pb"))
    assert os.path.exists(os.path.join(out, "folds", fold["fold"], "best.keras"))


def test_keras_save_load_round_trip(tiny_run, tmp_path):
    import keras

    cfg, summary = tiny_run
    fold = summary["folds"][0]["fold"]
    model = keras.saving.load_model(os.path.join(cfg.output_dir, "folds", fold, "best.keras"))
    x = {"features": np.random.default_rng(0).standard_normal((2, 80, 400)).astype("float32"),
         "num_frames": np.array([80, 50], "int32")}
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(model(x)["emotion"], again(x)["emotion"], atol=1e-6)
    clone = keras.Model.from_config(model.get_config())
    assert clone.count_params() == model.count_params()


RELOAD = r"""
import json, sys
import numpy as np, tensorflow as tf
assert "keras_ser" not in sys.modules
path, npz = sys.argv[1], sys.argv[2]
d = np.load(npz)
m = tf.saved_model.load(path)
wav = m.signatures["serving_default"](waveform=tf.constant(d["wav"]), num_samples=tf.constant(d["ns"]))
feat = m.signatures["features"](features=tf.constant(d["feats"]), num_frames=tf.constant(d["nf"]))
print(json.dumps({"wav": wav["emotion"].numpy().tolist(), "feat": feat["emotion"].numpy().tolist(),
                  "nf": wav["num_frames"].numpy().tolist(), "keras_ser": "keras_ser" in sys.modules}))
"""


def test_export_reloads_without_keras_ser_and_matches(tiny_run, tiny_corpus, tmp_path):
    import keras

    from keras_ser.audio import compute_features, load_audio

    cfg, summary = tiny_run
    export = summary["export"]
    fold = summary["folds"][0]["fold"]
    model = keras.saving.load_model(os.path.join(cfg.output_dir, "folds", fold, "best.keras"))
    wavs = [load_audio(p) for p in tiny_corpus.manifest["path"].iloc[:3]]
    ns = np.array([len(w) for w in wavs], "int32")
    batch = np.zeros((3, ns.max()), "float32")
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = w
    feats, nf = compute_features(batch, ns, "mlee")
    expected = model({"features": feats, "num_frames": nf})["emotion"].numpy()
    np.savez(tmp_path / "in.npz", wav=batch, ns=ns, feats=feats.numpy(), nf=nf.numpy())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", RELOAD, export, str(tmp_path / "in.npz")],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["keras_ser"] is False
    np.testing.assert_allclose(got["wav"], expected, atol=1e-5)
    np.testing.assert_allclose(got["feat"], expected, atol=1e-5)
    assert got["nf"] == nf.numpy().tolist()
    meta = json.load(open(os.path.join(export, "keras_ser.json")))
    assert meta["label_names"] == ["neutral", "happy", "sad", "angry"] and meta["frontend"]["name"] == "mlee"


def test_saved_model_cli_lists_both_signatures(tiny_run):
    _, summary = tiny_run
    # The module behind TensorFlow's `saved_model_cli` script: present wherever TensorFlow is.
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([*cli, "show", "--dir", summary["export"], "--all"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("signature_def['serving_default']", "signature_def['features']", "inputs['waveform']",
                 "inputs['num_samples']", "outputs['emotion']", "inputs['num_frames']"):
        assert name in out.stdout, name


def test_predict_cli(tiny_run, tiny_corpus, tmp_path):
    _, summary = tiny_run
    path = tiny_corpus.manifest["path"].iloc[0]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    base = os.path.dirname(summary["export"])
    out = subprocess.run([sys.executable, "-m", "keras_ser.cli.predict", base, path, "--json"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec["emotion"] in ("neutral", "happy", "sad", "angry")
    assert abs(sum(rec["probabilities"].values()) - 1) < 1e-3
    import soundfile as sf

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    half = tmp_path / "half.wav"
    half.write_bytes(open(path, "rb").read()[: os.path.getsize(path) // 2])  # a WAV cut in half
    sf.write(tmp_path / "silent.wav", np.zeros(16000, "float32"), 16000)
    sf.write(tmp_path / "loud.wav", np.linspace(-1000, 1000, 16000, dtype="float32"), 16000, subtype="FLOAT")
    files = [str(tmp_path / f) for f in ("bad.wav", "half.wav", "silent.wav", "loud.wav")]
    out = subprocess.run([sys.executable, "-m", "keras_ser.cli.predict", base, *files],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stdout.strip() == ""  # no prediction
    for name, why in (("bad.wav", "cannot decode"), ("half.wav", "file is truncated"), ("silent.wav", "digital silence"),
                      ("loud.wav", "samples beyond full scale")):
        assert f"{name}: {why}" in out.stderr, out.stderr


def test_interrupted_run_resumes_from_last_checkpoint(tiny_corpus, tmp_path):
    import keras

    from keras_ser.training.runner import run

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    cfg = _cfg(tmp_path, tiny_corpus, "train.epochs=3", "train.patience=10", "export.enabled=false")
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callbacks=[Interrupt()])
    assert not os.path.exists(os.path.join(cfg.output_dir, "metrics.json"))
    run(cfg)
    fold_dir = os.path.join(cfg.output_dir, "folds")
    (fold,) = os.listdir(fold_dir)
    with open(os.path.join(fold_dir, fold, "dominant", "history.csv")) as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    # Epoch 0 ran before the interruption; the second run continued at 1, not at 0.
    assert epochs == [0, 1, 2], epochs
    assert json.load(open(os.path.join(cfg.output_dir, "metrics.json")))["folds_run"] == 1


def test_a_finished_run_reloads_in_a_fresh_process(tiny_run):
    """A rerun in a new process skips the finished fold and loads its model (custom layers registered)."""
    cfg, _ = tiny_run
    code = f"""
import sys
from keras_ser.config import load_config
from keras_ser.training.loop import load_model
import glob
(path,) = glob.glob({cfg.output_dir!r} + "/folds/*/best.keras")
m = load_model(path)
print(sorted(m.output.keys()))
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['emotion']"


class _Probe:
    """A callback that records what the model looks like while it trains."""

    @staticmethod
    def make(seen):
        import keras

        class _Cb(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                from keras_ser.models.mlee import find_encoders

                conv = find_encoders(self.model)[0].get_layer("conv1")
                seen.update(strategy=type(self.model.distribute_strategy).__name__,
                            compute=conv.compute_dtype, variables=conv.kernel.dtype,
                            head=self.model.get_layer("emotion").compute_dtype,
                            optimizer=type(self.model.optimizer).__name__)

        return _Cb()


def test_mirrored_strategy_trains_and_evaluates(tiny_corpus, tmp_path):
    from keras_ser.training.runner import run

    seen = {}
    cfg = _cfg(tmp_path, tiny_corpus, "train.epochs=1", "train.strategy=mirrored", "export.enabled=false")
    summary = run(cfg, callbacks=[_Probe.make(seen)])
    assert seen["strategy"] == "MirroredStrategy"
    assert summary["folds"][0]["n"] == summary["folds"][0]["test_dominant"] > 0


MIRRORED_BN = r"""
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_ser.training.loop import SyncReplicaState

s = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
# the first half of each batch goes to replica 0, the second to replica 1: different statistics
x = np.concatenate([rng.normal(size=(32, 4)), 5 + 3 * rng.normal(size=(32, 4))]).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, np.zeros((64, 2), "float32"))).batch(64)


def copies(model):
    v = model.layers[1].moving_mean.value
    return [c.numpy() for c in v.values]


out = {}
for sync in (False, True):
    keras.utils.set_random_seed(0)
    with s.scope():
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
        m.compile("adam", "mse")
    m.fit(ds, validation_data=ds, epochs=2, verbose=0, callbacks=[SyncReplicaState()] if sync else [])
    c = copies(m)
    out[str(sync)] = {"gap": float(np.abs(c[0] - c[1]).max()), "read": m.layers[1].moving_mean.numpy().tolist(),
                      "mean": ((c[0] + c[1]) / 2).tolist()}
    if not sync:  # the callback's own averaging, applied by hand to the drifted copies
        cb = SyncReplicaState()
        cb.set_model(m)
        cb.on_epoch_end(0)
        out["by_hand"] = {"gap": float(np.abs(np.subtract(*copies(m))).max()),
                          "value": copies(m)[0].tolist(), "expected": ((c[0] + c[1]) / 2).tolist()}
print(json.dumps(out))
"""


def test_mirrored_replicas_share_batch_norm_statistics():
    """Under MirroredStrategy on two (logical CPU) devices, Keras 3 lets each replica keep its own
    moving statistics and reads the first's; `SyncReplicaState` (in every `loop.fit`) averages them."""
    out = subprocess.run([sys.executable, "-c", MIRRORED_BN], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["False"]["gap"] > 0.05  # the setting shows the drift the callback is for
    np.testing.assert_allclose(r["by_hand"]["value"], r["by_hand"]["expected"], atol=1e-6)
    assert r["by_hand"]["gap"] == 0
    assert r["True"]["gap"] == 0
    np.testing.assert_allclose(r["True"]["read"], r["True"]["mean"], atol=1e-6)


def test_mixed_precision_keeps_variables_and_heads_float32(tiny_corpus, tmp_path):
    import keras

    from keras_ser.training.runner import run

    seen = {}
    before = keras.config.dtype_policy().name
    cfg = _cfg(tmp_path, tiny_corpus, "train.epochs=1", "train.mixed_precision=true", "data.max_frames=100",
               "export.enabled=false")
    summary = run(cfg, callbacks=[_Probe.make(seen)])
    # No GPU here: bfloat16 compute (float16 on a GPU, with a loss-scale optimizer).
    assert seen["compute"] == "bfloat16" and seen["variables"] == "float32" and seen["head"] == "float32"
    assert keras.config.dtype_policy().name == before, "run() must restore the global dtype policy"
    assert np.isfinite(summary["mean"]["wa"]["mean"])
    x = {"features": np.zeros((1, 64, 400), "float32"), "num_frames": np.array([64], "int32")}
    model = keras.saving.load_model(os.path.join(cfg.output_dir, "folds", summary["folds"][0]["fold"], "best.keras"))
    assert model(x)["emotion"].dtype == "float32"


def test_a_users_manifest_trains_through_the_config(tiny_corpus, tmp_path):
    """data.corpus: manifest with data.root: a JSON-lines file giving only path, speaker and emotion."""
    from keras_ser.errors import ConfigError
    from keras_ser.training.data import records_dir
    from keras_ser.training.runner import run

    man = tiny_corpus.manifest
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"path": p, "speaker": s, "emotion": e}) + "\n"
                            for p, s, e in zip(man["path"], man["speaker"], man["emotion"], strict=True)))
    cfg = load_config("mlee/synthetic", [
        "data.corpus=manifest", f"data.root={path}", "data.num_workers=0", "data.speed_perturb=[]",
        "train.epochs=1", "train.verbose=0", "protocol.max_folds=1", "export.enabled=false",
        "model.params={conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], lstm_units: 8}",
        f"output_dir={tmp_path}/run"])
    name = os.path.basename(records_dir(cfg, man))
    assert name.startswith("manifest-mine-") and "-mlee-" in name
    # Copies or none: separate folders (the writer would rewrite a shared one each time).
    cfg.data.speed_perturb = [1.1, 0.9]
    assert "-mlee-sp0.9-sp1.1-" in records_dir(cfg, man)
    cfg.data.speed_perturb = []
    cfg.data.records_dir = str(tmp_path / "records")
    summary = run(cfg)
    fold = summary["folds"][0]
    speaker = sorted(man["speaker"].unique())[0]
    labelled = man["emotion"].isin(cfg.data.emotions) & (man["speaker"] == speaker)
    assert summary["folds_run"] == 1 and fold["fold"] == f"test-{speaker}" and fold["n"] == labelled.sum()
    with pytest.raises(ConfigError, match="absent.jsonl is not a manifest file"):
        load_config("mlee/synthetic", ["data.corpus=manifest", f"data.root={tmp_path}/absent.jsonl"])


def test_unknown_model_params_are_a_config_error_before_any_data_is_read(tmp_path, capsys):
    """A `model.params` key the model does not take (a typo) names itself and the model's
    arguments before feature extraction; every preset's params are accepted."""
    from keras_ser.config import list_presets
    from keras_ser.errors import ConfigError
    from keras_ser.training.runner import check_model_params, run

    for name in list_presets():
        check_model_params(load_config(name))
    for preset in ("mlee/synthetic", "strengthnet/synthetic", "epr/synthetic", "fg_cme/synthetic"):
        cfg = load_config(preset, ["model.params.lstm_unit=8", f"output_dir={tmp_path}/out",
                                   f"data.records_dir={tmp_path}/records"])
        with pytest.raises(ConfigError, match=r"model.params: 'lstm_unit' not taken by the \w+ model; it takes .*dropout"):
            run(cfg)
    with pytest.raises(ConfigError, match="'mean'"):  # set by the run from the training data
        check_model_params(load_config("strengthnet/synthetic", ["model.params.mean=0"]))
    check_model_params(load_config("strengthnet/synthetic", ["model.params.spec_augment={time_mask_param: 5}"]))
    for bad in ("{time_mask: 5}", "8"):
        with pytest.raises(ConfigError, match="model.params.spec_augment: .* not a mapping of freq_mask_param"):
            check_model_params(load_config("fg_cme/synthetic", [f"model.params.spec_augment={bad}"]))
    check_model_params(load_config("fg_cme/ravdess_recipe", ["model.params.channel_augment={gain: 0.5}"]))
    with pytest.raises(ConfigError, match="model.params.channel_augment: .* not a mapping of gain, shape, order, seed"):
        check_model_params(load_config("mlee/ravdess_recipe", ["model.params.channel_augment={tilt: 1}"]))
    with pytest.raises(ConfigError, match="model.params.channel_augment: ChannelAugment: gain, shape and order must be >= 0"):
        check_model_params(load_config("mlee/ravdess_recipe", ["model.params.channel_augment={gain: -1}"]))
    capsys.readouterr()
    # Its defaults are 4.3 dB in log units, but a standard deviation of each band on standardised features.
    for norm, params, warned in (("train", "{}", False), ("speaker", "{}", True), ("utterance", "{shape: 1}", True),
                                 ("speaker", "{gain: 0.3, shape: 0.15}", False)):
        check_model_params(load_config("fg_cme/ravdess_recipe", [f"model.params.channel_augment={params}",
                                                                 f"data.normalization={norm}"]))
        assert ("in standard deviations of each band" in capsys.readouterr().out) is warned, (norm, params)
    check_model_params(load_config("fg_cme/synthetic", ["model.params.utterance_norm=meanvar"]))
    with pytest.raises(ConfigError, match="model.params.utterance_norm: 'cmvn' is not one of"):
        check_model_params(load_config("fg_cme/synthetic", ["model.params.utterance_norm=cmvn"]))
    # FG_CME maps word times to frames with the frontend's hop and window: equal values are
    # accepted, others contradict the records (they would pool the wrong frames).
    check_model_params(load_config("fg_cme/synthetic", ["model.params.hop_s=0.01", "model.params.win_s=0.025"]))
    for bad in ("model.params.hop_s=0.0125", "model.params.win_s=0.05"):
        cfg = load_config("fg_cme/synthetic", [bad, f"output_dir={tmp_path}/out", f"data.records_dir={tmp_path}/records"])
        with pytest.raises(ConfigError, match=r"model.params.(hop|win)_s: .* contradicts the frontend 'fg_cme'"):
            run(cfg)
    assert not os.path.exists(tmp_path / "records") and not os.path.exists(tmp_path / "out")


def test_every_preset_resolves():
    """Each preset parses and validates (real-corpus presets need no data to load)."""
    from keras_ser.config import list_presets

    presets = list_presets()
    assert {"mlee/synthetic", "mlee/emodb", "mlee/iemocap", "strengthnet/synthetic", "strengthnet/emodb",
            "strengthnet/ravdess", "strengthnet/fused", "epr/synthetic", "epr/emodb", "epr/emodb_small"} <= set(presets)
    for name in presets:
        cfg = load_config(name)
        assert cfg.system == name.split("/")[0], name
        if not name.endswith("_recipe"):  # a recipe may build another model of its system (a baseline)
            assert cfg.model.name == {"epr": "vgg"}.get(cfg.system, cfg.system), name


SMOKE = {
    "mlee/synthetic": "model.params={conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], lstm_units: 8}",
    "strengthnet/synthetic": "model.params={filters: [4, 4, 8, 8], lstm_units: 8, dense_units: 8}",
}


@pytest.mark.parametrize("preset", [
    "mlee/synthetic",
    # StrengthNet's run is covered in-process (tests/test_strengthnet.py) and openSMILE's spawn
    # workers by tests/test_tfrecords.py; its CLI smoke run (~90 s) is kept out of CI's budget.
    pytest.param("strengthnet/synthetic", marks=pytest.mark.slow),
])
def test_synthetic_presets_run_through_the_cli(preset, tiny_corpus, tmp_path):
    """keras_ser-train runs each system's synthetic recipe end to end (SpeechBrain-style smoke run);
    for StrengthNet this includes openSMILE's spawn workers started from the CLI process."""
    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    args = [sys.executable, "-m", "keras_ser.cli.train", preset, f"data.root={root}",
            "data.synthetic_size=tiny", f"data.records_dir={tmp_path}/rec", "data.num_workers=1",
            "data.speed_perturb=[]", "train.epochs=1", "train.verbose=0", "protocol.max_folds=1",
            SMOKE[preset], f"output_dir={tmp_path}/run"]
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    name = preset.split("/")[0]
    assert os.path.exists(tmp_path / "run" / "config.yaml") and os.path.exists(tmp_path / "run" / "metrics.json")
    assert os.path.exists(tmp_path / "run" / "export" / name / "1" / "saved_model.pb")


def test_the_export_checks_its_inputs_in_the_graph(tiny_run, tiny_corpus):
    """TF Serving callers get the checks too: a request that does not fit together fails with a
    message; an utterance that cannot be scored gets a status and NaN heads, never a class,
    while the others in its batch are scored as if alone."""
    import tensorflow as tf

    from keras_ser.audio import load_audio

    cfg, summary = tiny_run
    fn = tf.saved_model.load(summary["export"]).signatures["serving_default"]
    meta = json.load(open(os.path.join(summary["export"], "keras_ser.json")))
    good = load_audio(tiny_corpus.manifest["path"].iloc[0])
    n = len(good)
    rows = {"ok": good, "nan": np.where(np.arange(n) == 100, np.nan, good), "loud": good * 1000,
            "short": good[:300], "silent": np.zeros(n)}
    batch = np.zeros((len(rows), n), "float32")
    lengths = []
    for i, w in enumerate(rows.values()):
        batch[i, : len(w)] = w
        lengths.append(len(w))
    out = fn(waveform=tf.constant(batch), num_samples=tf.constant(lengths, tf.int32))
    assert out["status"].numpy().tolist() == [0, 1, 2, 3, 4]
    assert {meta["status_codes"][str(c)].split()[0] for c in range(1, 5)} == {"NaN", "samples", "too", "digital"}
    emotion = out["emotion"].numpy()
    assert np.all(np.isfinite(emotion[0])) and np.all(np.isnan(emotion[1:]))
    alone = fn(waveform=tf.constant(good[None]), num_samples=tf.constant([n], tf.int32))
    np.testing.assert_allclose(emotion[0], alone["emotion"].numpy()[0], atol=1e-5)
    for waveform, num_samples, message in [
        (batch[:2], [n, n + 1], "num_samples must not exceed"),
        (batch[:2], [n, 0], "num_samples must be > 0"),
        (batch[:2], [n], "num_samples must have one entry per row of waveform"),
        (np.zeros((0, n), "float32"), np.zeros(0, "int32"), "empty batch"),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            fn(waveform=tf.constant(waveform), num_samples=tf.constant(num_samples, tf.int32))
    features = tf.saved_model.load(summary["export"]).signatures["features"]
    x = np.zeros((2, 50, 400), "float32")
    x[1, 3, 5] = np.inf
    res = features(features=tf.constant(x), num_frames=tf.constant([50, 50], tf.int32))
    assert res["status"].numpy().tolist() == [0, 1] and np.isnan(res["emotion"].numpy()[1]).all()
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_frames must not exceed"):
        features(features=tf.constant(x), num_frames=tf.constant([50, 51], tf.int32))


@pytest.mark.parametrize("problem", ["missing", "file", "no_meta", "bad_meta", "no_variables", "corrupt_pb", "swapped"])
def test_predict_names_a_broken_export(tiny_run, tiny_corpus, tmp_path, problem):
    """Every broken export is a clear message naming the folder, never a traceback."""
    import shutil

    cfg, summary = tiny_run
    export = str(tmp_path / "export" / "1")
    shutil.copytree(summary["export"], export)
    wav = tiny_corpus.manifest["path"].iloc[0]
    args, expect = [export, wav], None
    if problem == "missing":
        args, expect = [str(tmp_path / "nowhere"), wav], "no such export folder"
    elif problem in ("file", "swapped"):
        args, expect = [wav, export], "a file, not an export folder"
    elif problem == "no_meta":
        os.remove(os.path.join(export, "keras_ser.json"))
        expect = "no keras_ser.json"
    elif problem == "bad_meta":
        open(os.path.join(export, "keras_ser.json"), "w").write("{not json")
        expect = "keras_ser.json: not valid JSON"
    elif problem == "no_variables":
        shutil.rmtree(os.path.join(export, "variables"))
        expect = "no variables/ folder"
    elif problem == "corrupt_pb":
        pb = os.path.join(export, "saved_model.pb")
        data = bytearray(open(pb, "rb").read())
        data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
        open(pb, "wb").write(bytes(data[: len(data) * 3 // 4]))
        expect = "the SavedModel does not load"
    out = subprocess.run([sys.executable, "-m", "keras_ser.cli.predict", *args], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 2 and expect in out.stderr and "Traceback" not in out.stderr, out.stderr[-1500:]
