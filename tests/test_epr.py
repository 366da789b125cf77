"""EPR: segments, label refinement, profile statistics, the forest in the graph, out-of-fold
labels, a run and its export."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_ser.config import load_config
from keras_ser.errors import ConfigError
from keras_ser.labels.profiles import profile_statistics, refine_labels, statistic_names
from keras_ser.models.epr import build_epr_model, build_vgg
from tests.harness import AUDIO, audio_examples, check_exports, model_case, run_case

TINY_VGG = "model.params={config: A, width: 0.0625, dense_units: [16], dropout: 0.0}"


def test_refine_labels_by_hand():
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    np.testing.assert_allclose(refine_labels("sepr", p, 1), p, rtol=1e-6)
    # pEPR: (p + onehot(1)) / 2.
    np.testing.assert_allclose(refine_labels("pepr", p, 1), [[0.3, 0.65, 0.05], [0.1, 0.6, 0.3]], rtol=1e-6)
    np.testing.assert_array_equal(refine_labels("hard_dynamic", p, 1), [[1, 0, 0], [0, 0, 1]])
    # Soft static: the utterance mean (0.4, 0.25, 0.35) on every segment.
    np.testing.assert_allclose(refine_labels("soft_static", p, 1), [[0.4, 0.25, 0.35]] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown method"):
        refine_labels("mean", p, 0)


def test_profile_statistics_by_hand():
    p = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    s = dict(zip(statistic_names(["a", "b"], (50.0,)), profile_statistics(p, (50.0,))))
    assert s["mean_a"] == pytest.approx(0.5)
    assert s["std_a"] == pytest.approx(np.sqrt((0.04 + 0.09 + 0.01 + 0) / 4))
    assert (s["min_b"], s["max_b"]) == pytest.approx((0.3, 0.8))
    assert s["p50_a"] == pytest.approx(0.55)  # between 0.5 and 0.6
    # argmax per segment: a, b, a, a (a tie goes to the first class)
    assert (s["argmax_share_a"], s["argmax_share_b"]) == pytest.approx((0.75, 0.25))
    assert len(s) == 12


def test_segments_and_counts():
    import tensorflow as tf

    from keras_ser.layers.segments import frame_segments, segment_count

    x = np.zeros((3, 40, 2), "float32")
    for b, n in enumerate((40, 35, 10)):
        x[b, :n, 0] = np.arange(1, n + 1)
    seg, counts = frame_segments(tf.constant(x), tf.constant([40, 35, 10]), length=32, hop=3, pad_value=-5.0)
    np.testing.assert_array_equal(counts, segment_count([40, 35, 10], 32, 3))
    np.testing.assert_array_equal(counts, [3, 2, 1])
    assert seg.shape == (3, 3, 32, 2)
    np.testing.assert_array_equal(seg[0, 2, :, 0], np.arange(7, 39))  # third segment starts at frame 6
    np.testing.assert_array_equal(seg[1, 1, :, 0], np.arange(4, 36))  # last real one of 35 frames
    # A 10-frame utterance: one segment, its frames then silence.
    np.testing.assert_array_equal(seg[2, 0, :10, 0], np.arange(1, 11))
    assert np.all(np.asarray(seg)[2, 0, 10:] == -5.0)
    # Shorter than a segment in the whole batch: padded to one segment.
    seg, counts = frame_segments(tf.zeros((1, 5, 2)), tf.constant([5]), length=32, hop=1, pad_value=-1.0)
    assert seg.shape == (1, 1, 32, 2) and int(counts[0]) == 1


def test_profile_statistics_layer_equals_numpy():
    from keras_ser.labels.profiles import statistics_matrix
    from keras_ser.layers import ProfileStatistics

    rng = np.random.default_rng(0)
    profiles = [rng.dirichlet(np.ones(4), size=n).astype("float32") for n in (1, 2, 7, 30)]
    batch = np.zeros((4, 30, 4), "float32")
    for i, p in enumerate(profiles):
        batch[i, : len(p)] = p
    got = ProfileStatistics((10.0, 25.0, 50.0, 75.0, 90.0))(batch, np.array([1, 2, 7, 30]))
    np.testing.assert_allclose(got, statistics_matrix(profiles), atol=1e-6)


def test_forest_layer_equals_scikit_learn(tmp_path):
    import keras
    from sklearn.ensemble import RandomForestClassifier

    from keras_ser.layers import RandomForest

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 12)).astype("float32")
    y = (X[:, 0] + X[:, 1] ** 2 > 0.8).astype(int) + 2 * (X[:, 2] > 1.0)  # classes 0..3; class 4 never seen
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    layer = RandomForest.from_sklearn(forest, num_classes=5)
    Xt = rng.standard_normal((200, 12)).astype("float32")
    want = np.zeros((200, 5))
    want[:, forest.classes_] = forest.predict_proba(Xt)
    np.testing.assert_allclose(layer(Xt), want, atol=1e-6)
    # It travels in a .keras file (weights, not a pickle) and gives the same probabilities.
    inp = keras.Input((12,))
    model = keras.Model(inp, RandomForest.from_sklearn(forest, num_classes=5, name="emotion")(inp))
    model.save(tmp_path / "forest.keras")
    import keras_ser.layers  # noqa: F401

    again = keras.saving.load_model(tmp_path / "forest.keras")
    np.testing.assert_allclose(again(Xt), want, atol=1e-6)


def _epr_model():
    """A tiny VGG and a forest fitted on random profiles, as one utterance model."""
    from sklearn.ensemble import RandomForestClassifier

    from keras_ser.labels.profiles import statistics_matrix

    rng = np.random.default_rng(1)
    vgg = build_vgg(3, 32, 16, config="A", width=0.0625, dense_units=(8,))
    fake = [rng.dirichlet(np.ones(3), size=5) for _ in range(30)]
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(statistics_matrix(fake), rng.integers(0, 3, 30))
    return build_epr_model(vgg, forest, feature_dim=16, segment_hop=2, pad_value=-13.8)


def _forest_probabilities_sum_to_one(out, batch):
    np.testing.assert_allclose(np.sum(out["emotion"], -1), 1.0, atol=1e-6)


CASES = [
    model_case("vgg", build_vgg, dict(num_classes=3, segment_frames=32, feature_dim=16, config="B", width=0.0625,
                                      dense_units=(8,), mean=np.zeros(16), std=np.ones(16)),
               [{"segments": s} for s in np.random.default_rng(0).standard_normal((2, 32, 16)).astype("float32")]),
    # 20 frames: shorter than one segment, padded with silence inside the model.
    model_case("utterance_model", _epr_model, {}, audio_examples([70, 20, 33], 16), check=_forest_probabilities_sum_to_one,
               **AUDIO),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_model(case, tmp_path):
    run_case(case, tmp_path)


def test_models_export_and_reload_without_keras_ser(tmp_path):
    check_exports(CASES, tmp_path)


def test_epr_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="epr.refinery"):
        load_config("epr/synthetic", ["epr.refinery=dynamic"])
    with pytest.raises(ConfigError, match="epr.inner_folds"):
        load_config("epr/synthetic", ["epr.inner_folds=1"])


def test_training_labels_come_from_networks_that_never_saw_them(tiny_records, monkeypatch, tmp_path):
    """The refinery's bookkeeping, with stand-in networks: every training utterance's profile
    (hence its next-stage label) is predicted by a network not trained on it, and stage t's
    labels are stage t-1's refined profiles."""
    from keras_ser.training import epr
    from keras_ser.training.protocols import make_folds

    rs = tiny_records
    cfg = load_config("epr/synthetic", ["epr.stages=3", "epr.inner_folds=3", "epr.refinery=sepr"])
    man = rs.manifest[rs.manifest["emotion"].isin(rs.label_names)]
    labels_of = dict(zip(man["utterance_id"], man["emotion"].map(rs.label_names.index)))
    fold = make_folds(man, "kfold", k=4)[0]
    trained_on, tables, serial = {}, [], iter(range(10**6))

    class FakeClassifier:  # each train() is a new network: a new id
        def __init__(self, cfg, rs, stats):
            self.id = None

        def train(self, rs, train_table, dev_table, net_dir, callbacks=()):
            tables.append((net_dir, train_table))
            self.id = next(serial)
            trained_on[self.id] = set(train_table.ids)
            return self

    predicted_by = {}

    def fake_predict(net, rs, cfg, ids):
        out = []
        for u in ids:
            predicted_by.setdefault(u, []).append(net.id)
            n = int(epr.segment_counts(cfg, rs, [u])[0])
            p = np.full((n, 4), 0.1, np.float32)
            p[:, net.id % 4] = 0.7  # which network made it shows in the profile
            out.append(p)
        return out

    monkeypatch.setattr(epr, "SegmentClassifier", FakeClassifier)
    monkeypatch.setattr(epr, "predict_profiles", fake_predict)
    monkeypatch.setattr(epr, "utterance_stats", lambda rs, cfg, ids: None)
    monkeypatch.setattr(epr.loop, "load_model", lambda path: None)
    stages, _, forest = epr.run_fold(cfg, rs, fold, str(tmp_path), labels_of, rs.label_names)
    assert len(stages) == 3 and len(tables) == 3 * (3 + 1)
    for u in fold.train:
        assert len(predicted_by[u]) == 3  # once per stage
        for net in predicted_by[u]:
            assert u not in trained_on[net], f"{u} labelled by a network trained on it"
    for u in list(fold.dev) + list(fold.test):
        assert all(u not in trained_on[net] for net in predicted_by[u])
    # Stage 2's full network learns sEPR labels = stage 1's profiles (one per training utterance).
    full2 = [t for d, t in tables if d.endswith(os.path.join("stage2", "full"))][0]
    first = full2.ids[0]
    maker = predicted_by[first][0]
    row = full2.labels[0]
    assert row.argmax() == maker % 4 and row.max() == pytest.approx(0.7)
    # Stage 1 learns one-hot utterance labels on every segment.
    full1 = [t for d, t in tables if d.endswith(os.path.join("stage1", "full"))][0]
    np.testing.assert_array_equal(full1.labels.argmax(1), np.repeat([labels_of[u] for u in full1.ids], full1.counts))


@pytest.fixture(scope="module")
def epr_run(tmp_path_factory):
    """`keras_ser-train epr/synthetic` on the tiny corpus, through the CLI (smoke run)."""
    out = tmp_path_factory.mktemp("epr")
    overrides = ["data.synthetic_size=tiny", f"data.records_dir={out / 'records'}", f"output_dir={out / 'run'}",
                 "data.num_workers=1", "train.epochs=1", "train.verbose=0", "epr.stages=2", "epr.inner_folds=2",
                 "protocol.k=4", TINY_VGG]
    res = subprocess.run([sys.executable, "-m", "keras_ser.cli.train", "epr/synthetic", *overrides],
                         capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "stage 2: network WA" in res.stdout
    with open(out / "run" / "metrics.json") as f:
        return load_config("epr/synthetic", overrides), json.load(f)


def test_deterministic_runs_train_the_same_networks(epr_run, tmp_path):
    """train.deterministic: two runs with the same seed write the same training histories (without
    it, two CPU runs differ from the first epoch). Subprocesses: op determinism is process-wide."""
    cfg, _ = epr_run
    histories = []
    for name in ("a", "b"):
        out = tmp_path / name
        overrides = ["data.synthetic_size=tiny", f"data.records_dir={cfg.data.records_dir}", f"output_dir={out}",
                     "data.num_workers=1", "train.epochs=1", "train.verbose=0", "epr.stages=1", "epr.inner_folds=2",
                     "protocol.k=4", "export.enabled=false", "train.deterministic=true", TINY_VGG]
        res = subprocess.run([sys.executable, "-m", "keras_ser.cli.train", "epr/synthetic", *overrides],
                             capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert res.returncode == 0, res.stderr[-3000:]
        fold_dir = out / "folds" / os.listdir(out / "folds")[0] / "stage1"
        histories.append({d: (fold_dir / d / "history.csv").read_text() for d in ("inner1", "inner2", "full")})
    assert histories[0] == histories[1]


def test_run_reports_every_stage_and_exports(epr_run):
    cfg, summary = epr_run
    assert summary["folds_run"] == 1 and [s["stage"] for s in summary["stages"]] == [1, 2]
    fold = summary["folds"][0]
    assert fold["n"] == fold["test"] and fold["wa"] == fold["stages"][-1]["forest"]["wa"]
    assert summary["short_utterances"] == 0
    assert len(summary["statistics"]) == 10 * 4
    meta = json.load(open(os.path.join(summary["export"], "keras_ser.json")))
    assert set(meta["heads"]) == {"emotion", "segment_mean"} and meta["segment_hop"] == 3


def test_export_returns_the_forest_probabilities_from_audio(epr_run):
    """The SavedModel, from a waveform in a fresh process, gives what the run's own pipeline gave
    for a test utterance (profile from the tf.data segments, NumPy statistics, scikit-learn
    forest refitted as the run fitted it)."""
    cfg, summary = epr_run
    from keras_ser.labels.profiles import statistics_matrix
    from keras_ser.training import data, epr

    manifest = data.load_manifest(cfg)
    rs = data.prepare_records(cfg, manifest)
    labelled = data.labelled(cfg, manifest)
    fold = data.fold_list(cfg, labelled)[0]
    labels_of = dict(zip(labelled["utterance_id"], labelled["emotion"].map(rs.label_names.index)))
    profiles = epr.load_profiles(os.path.join(cfg.output_dir, "folds", fold.name, "stage2", "profiles.npz"))
    forest = epr.fit_forest(cfg, profiles, list(fold.train) + list(fold.dev), labels_of)
    uid = fold.test[0]
    want = epr.forest_probabilities(forest, statistics_matrix([profiles[uid]], cfg.epr.percentiles), 4)[0]
    path = rs.manifest.set_index("utterance_id").loc[uid, "path"]
    code = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        "from keras_ser.audio.io import load_audio\n"
        "m = tf.saved_model.load(sys.argv[1]); w = load_audio(sys.argv[2])\n"
        "out = m.signatures['serving_default'](waveform=tf.constant(w[None]), num_samples=tf.constant([len(w)], tf.int32))\n"
        "print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))\n")
    res = subprocess.run([sys.executable, "-c", code, summary["export"], path], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["segment_mean"][0], profiles[uid].mean(0), atol=1e-4)
    np.testing.assert_allclose(got["emotion"][0], want, atol=1e-5)


def test_profile_features_experiment_refits_the_run_s_own_forest(epr_run, tmp_path):
    """experiments/epr_profile_features.py reconstructs the folds and refits the forests; its
    `paper` row must equal the run's recorded forest scores (the script checks each stage)."""
    import importlib.util

    cfg, summary = epr_run
    path = os.path.join(os.path.dirname(__file__), "..", "experiments", "epr_profile_features.py")
    spec = importlib.util.spec_from_file_location("epr_profile_features", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([cfg.output_dir, "--out", str(tmp_path / "f.json")]) == 0
    doc = json.load(open(tmp_path / "f.json"))
    assert doc["folds"] == [summary["folds"][0]["fold"]]
    rows = {(r["stage"], r["statistics"]): r for r in doc["stages"]}
    sets = ("paper", "mean", "paper+log", "paper+delta", "paper+length", "network", "segments")
    assert set(rows) == {(t, s) for t in (1, 2) for s in sets} and "ua" not in rows[1, "segments"]
    for t in (1, 2):
        assert rows[t, "paper"]["wa"]["mean"] == pytest.approx(summary["stages"][t - 1]["forest"]["wa"]["mean"])
        assert rows[t, "network"]["ua"]["mean"] == pytest.approx(summary["stages"][t - 1]["network"]["ua"]["mean"])
    # One fold: the pooled per-class recalls average to the run's recorded UA, for the network's
    # decision and for the forest's.
    recall = {(r["stage"], r["decision"]): r["recall"] for r in doc["per_class_recall"]}
    assert set(recall) == {(t, d) for t in (1, 2)
                           for d in ("test network", "train network (out-of-fold)", "test forest")}
    for t in (1, 2):
        for decision, key in (("test network", "network"), ("test forest", "forest")):
            present = [r for r in recall[t, decision].values() if r is not None]
            assert np.mean(present) == pytest.approx(summary["stages"][t - 1][key]["ua"]["mean"])


def test_an_interrupted_run_resumes_without_retraining(epr_run):
    """Lose the last stage's profiles and the fold's metrics (as if killed before writing them):
    a rerun retrains no network (each is done), rebuilds the profiles and gives the same result."""
    from keras_ser.training.runner import run

    cfg, summary = epr_run
    fold_dir = os.path.join(cfg.output_dir, "folds", summary["folds"][0]["fold"])
    histories = {d: open(os.path.join(fold_dir, d, "history.csv")).read()
                 for d in ("stage1/full", "stage2/inner1", "stage2/full")}
    os.remove(os.path.join(fold_dir, "stage2", "profiles.npz"))
    os.remove(os.path.join(fold_dir, "metrics.json"))
    again = run(cfg)
    for d, text in histories.items():
        assert open(os.path.join(fold_dir, d, "history.csv")).read() == text, f"{d} was retrained"
    assert again["folds"][0]["stages"][1]["forest"] == summary["folds"][0]["stages"][1]["forest"]
    assert os.path.exists(os.path.join(fold_dir, "stage2", "profiles.npz"))
