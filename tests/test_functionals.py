"""The openSMILE reference system: a run, its export, identical folds for other systems, and
per-speaker normalisation where it helps and where it removes the signal."""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_ser.config import load_config
from keras_ser.errors import ConfigError


def _cfg(tmp, root, *extra):
    return load_config("functionals/synthetic", [
        "data.synthetic_size=tiny", f"data.root={root}", "data.num_workers=1", "train.verbose=0",
        "protocol.min_fold_utterances=2", f"output_dir={tmp}/run", *extra])


def _root(tiny_corpus):
    return os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))


@pytest.fixture(scope="module")
def ref_run(tiny_corpus, tmp_path_factory):
    from keras_ser.training.runner import run

    tmp = tmp_path_factory.mktemp("functionals")
    cfg = _cfg(tmp, _root(tiny_corpus))
    return cfg, run(cfg)


def test_the_reference_scores_every_fold_and_writes_its_folds(ref_run):
    cfg, summary = ref_run
    assert summary["folds_run"] == 4 and summary["feature_set"] == "eGeMAPSv02" and summary["features"] == 88
    assert summary["mean"]["wa"]["mean"] > 0.4  # 4 classes: chance is 0.25
    folds = json.load(open(os.path.join(cfg.output_dir, "folds.json")))
    assert folds["protocol"] == "loso" and folds["group"] == "speaker" and len(folds["folds"]) == 4
    fold = summary["folds"][0]
    pred = open(os.path.join(cfg.output_dir, "folds", fold["fold"], "predictions.csv")).read().splitlines()
    assert len(pred) == fold["n"] + 1 and pred[0].startswith("utterance_id,speaker,emotion,predicted,score_neutral")


def test_the_export_is_the_standardiser_and_the_logistic_regression(ref_run, tiny_corpus):
    """The export, reloaded without keras_ser, gives scikit-learn's probabilities."""
    from keras_ser.training import functionals

    cfg, summary = ref_run
    X, _, _ = functionals.functionals(cfg, tiny_corpus.manifest)
    labelled = tiny_corpus.manifest["emotion"].isin(cfg.data.emotions).to_numpy()
    manifest, X = tiny_corpus.manifest[labelled], X[labelled]
    fold = json.load(open(os.path.join(cfg.output_dir, "folds.json")))["folds"][0]
    row = {u: i for i, u in enumerate(manifest["utterance_id"])}
    fit = [row[u] for u in fold["train"] + fold["dev"]]
    y = manifest["emotion"].map(list(cfg.data.emotions).index).to_numpy()
    pipeline = functionals.make_classifier(cfg).fit(X[fit], y[fit])
    test = X[[row[u] for u in fold["test"]]].astype("float32")
    test[1, 3] = np.nan
    np.save(os.path.join(cfg.output_dir, "x.npy"), test)
    code = ("import json, sys, numpy as np, tensorflow as tf\n"
            "f = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
            "out = f(features=tf.constant(np.load(sys.argv[2])))\n"
            "assert 'keras_ser' not in sys.modules\n"
            "print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))\n")
    res = subprocess.run([sys.executable, "-c", code, summary["export"], os.path.join(cfg.output_dir, "x.npy")],
                         capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    want = pipeline.predict_proba(np.nan_to_num(test))
    keep = np.arange(len(test)) != 1
    np.testing.assert_allclose(np.asarray(got["emotion"])[keep], want[keep], atol=1e-4)
    assert got["status"][1] == 1 and np.isnan(got["emotion"][1]).all()


def _first_fold_pipeline(cfg, manifest, X):
    """The pipeline the export holds: the first fold's training and development utterances."""
    from keras_ser.training import functionals

    labelled = manifest["emotion"].isin(cfg.data.emotions).to_numpy()
    fold = json.load(open(os.path.join(cfg.output_dir, "folds.json")))["folds"][0]
    row = {u: i for i, u in enumerate(manifest["utterance_id"])}
    fit = [row[u] for u in fold["train"] + fold["dev"]]
    y = manifest["emotion"].map({e: k for k, e in enumerate(cfg.data.emotions)}).to_numpy()
    assert labelled[fit].all()
    return functionals.make_classifier(cfg).fit(X[fit], y[fit].astype(int)), fold


def _predict(*args):
    return subprocess.run([sys.executable, "-m", "keras_ser.cli.predict", *map(str, args)],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_keras_ser_predict_scores_audio_with_the_reference_s_export(ref_run, tiny_corpus, tmp_path):
    """keras_ser-predict extracts the export's functionals from audio files (as training did)
    and gives scikit-learn's probabilities; a bad file is named and the others are scored."""
    import shutil

    from keras_ser.training import functionals

    cfg, summary = ref_run
    manifest = tiny_corpus.manifest
    X, _, _ = functionals.functionals(cfg, manifest)
    pipeline, fold = _first_fold_pipeline(cfg, manifest, X)
    row = {u: i for i, u in enumerate(manifest["utterance_id"])}
    rows = [row[u] for u in fold["test"][:3]]
    paths = manifest["path"].to_numpy()[rows].tolist()
    (tmp_path / "notes.wav").write_text("not audio")
    out = _predict(summary["export"], paths[0], tmp_path / "notes.wav", *paths[1:], "--json")
    assert out.returncode == 2 and "notes.wav: cannot decode audio" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    got = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert [g["file"] for g in got] == paths
    want = pipeline.predict_proba(X[rows])
    np.testing.assert_allclose([list(g["probabilities"].values()) for g in got], want, atol=2e-4)
    assert [g["emotion"] for g in got] == [cfg.data.emotions[k] for k in want.argmax(1)]
    out = _predict(summary["export"], tmp_path / "notes.wav")  # the bad file alone: named all the same
    assert out.returncode == 2 and "notes.wav: cannot decode audio" in out.stderr and not out.stdout
    assert "Traceback" not in out.stderr
    # Words make no sense for it; functionals of another openSMILE version are refused, named.
    out = _predict(summary["export"], paths[0], "--transcript", "kids are talking")
    assert out.returncode == 2 and "takes no words" in out.stderr
    other = tmp_path / "export"
    shutil.copytree(summary["export"], other)
    meta = json.loads((other / "keras_ser.json").read_text())
    meta["feature_names"][5] = "F0semitoneFrom27.5Hz_sma3nz_renamed"
    (other / "keras_ser.json").write_text(json.dumps(meta))
    out = _predict(other, paths[0])
    assert out.returncode == 2 and "they first differ at #5" in out.stderr and "Traceback" not in out.stderr


def test_keras_ser_predict_normalises_the_files_as_one_speaker_for_a_per_speaker_export(tiny_corpus, tmp_path):
    """An export trained with per-speaker normalisation: keras_ser-predict z-scores the
    functionals over the files given, as training did over each speaker's utterances."""
    from keras_ser.training import functionals
    from keras_ser.training import utterance_features as F
    from keras_ser.training.runner import run

    cfg = _cfg(tmp_path, _root(tiny_corpus), "data.normalization=speaker")
    summary = run(cfg)
    manifest = tiny_corpus.manifest
    X, _, _ = functionals.functionals(cfg, manifest)
    speakers = manifest["speaker"].to_numpy(str)
    pipeline, _ = _first_fold_pipeline(cfg, manifest, F.speaker_standardised(X, speakers))
    rows = np.flatnonzero(speakers == speakers[0])
    paths = manifest["path"].to_numpy()[rows].tolist()
    out = _predict(summary["export"], *paths, "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "statistics from the files given, taken as one speaker's audio" in out.stderr
    got = [list(json.loads(line)["probabilities"].values()) for line in out.stdout.strip().splitlines()]
    np.testing.assert_allclose(got, pipeline.predict_proba(F.speaker_standardised(X[rows], speakers[rows])),
                               atol=2e-4)
    out = _predict(summary["export"], paths[0])
    assert out.returncode == 2 and "give several files of one speaker (1 gave functionals)" in out.stderr


@pytest.fixture(scope="module")
def mlee_on_ref_folds(ref_run, tiny_corpus, tmp_path_factory):
    """MLEE's first fold on the reference's folds, exported."""
    from keras_ser.training.runner import run

    cfg, _ = ref_run
    tmp = tmp_path_factory.mktemp("mlee_ref_folds")
    mlee = load_config("mlee/synthetic", [
        f"data.root={_root(tiny_corpus)}", "data.synthetic_size=tiny", f"data.records_dir={tmp}/rec",
        "data.num_workers=0", "train.epochs=1", "train.verbose=0", "protocol.max_folds=1",
        "model.params={conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], lstm_units: 8}",
        f"protocol.folds_file={os.path.join(cfg.output_dir, 'folds.json')}", "protocol.name=kfold",
        f"output_dir={tmp}/mlee"])
    return mlee, run(mlee)


def test_another_system_scores_the_reference_s_folds(ref_run, mlee_on_ref_folds, tmp_path):
    """protocol.folds_file: MLEE runs on the reference's folds, utterance by utterance."""
    from keras_ser.errors import CorpusError
    from keras_ser.training.runner import run

    cfg, summary = ref_run
    mlee, out = mlee_on_ref_folds
    folds_file = os.path.join(cfg.output_dir, "folds.json")
    theirs = json.load(open(folds_file))["folds"][0]
    ours = json.load(open(os.path.join(mlee.output_dir, "folds.json")))["folds"][0]
    assert ours == theirs and out["folds"][0]["fold"] == theirs["name"]
    broken = dict(json.load(open(folds_file)))
    broken["folds"] = [dict(theirs, test=theirs["test"] + ["not_an_utterance"])]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    mlee = copy.deepcopy(mlee)  # the fixture's config stays as it ran
    mlee.protocol.folds_file = str(tmp_path / "broken.json")
    mlee.output_dir = str(tmp_path / "mlee2")
    with pytest.raises(CorpusError, match="broken.json: 1 of its utterances are not in this run's corpus"):
        run(mlee)


def _fold_scores(run_dir, fold, labels):
    import pandas as pd

    p = pd.read_csv(os.path.join(run_dir, "folds", fold, "predictions.csv")).set_index("utterance_id")
    return p[[f"score_{n}" for n in labels]]


def test_the_late_fusion_export_is_the_hybrid_of_the_first_fold(ref_run, mlee_on_ref_folds, tiny_corpus, tmp_path):
    """keras_ser-fuse makes one SavedModel of a network's export and the reference's; on the
    first fold's test files it gives the average of the two runs' fold predictions (the hybrid
    row late_fusion.py scores), through keras_ser-predict and reloaded without keras_ser."""
    from keras_ser.serving.fusion import export_fusion

    cfg, summary = ref_run
    mlee, out = mlee_on_ref_folds
    labels = list(cfg.data.emotions)
    fold = out["folds"][0]["fold"]
    # (MLEE leaves out utterances shorter than its frontend needs: the reference scores them.)
    want = (0.5 * _fold_scores(mlee.output_dir, fold, labels) + 0.5 * _fold_scores(cfg.output_dir, fold, labels)).dropna()
    import shutil

    parts = [shutil.copytree(e, tmp_path / name) for e, name in ((out["export"], "a"), (summary["export"], "b"))]
    fused = export_fusion(*map(str, parts), str(tmp_path / "hybrid"))
    for part in parts:  # the fused model holds the parts' graphs and variables
        shutil.rmtree(part)
    meta = json.loads(open(os.path.join(fused, "keras_ser.json")).read())
    assert meta["signatures"]["serving_default"] == ["features", "num_samples", "waveform"]
    assert meta["feature_set"] == "eGeMAPSv02" and meta["frontend"]["name"] and meta["label_names"] == labels
    assert "num_frames" in meta["heads"]  # a part's other outputs are passed through
    paths = tiny_corpus.manifest.set_index("utterance_id").loc[want.index[:4], "path"].tolist()
    res = _predict(str(tmp_path / "hybrid"), *paths, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    got = [list(json.loads(line)["probabilities"].values()) for line in res.stdout.strip().splitlines()]
    np.testing.assert_allclose(got, want.to_numpy()[:4], atol=2e-3)
    # All the weight on the network, softened with a temperature: p ** (1 / T) renormalised.
    # (The parts named by their run folders: each one's export.)
    export_fusion(mlee.output_dir, cfg.output_dir, str(tmp_path / "hybrid"), weight=1.0, temperature_a=2.0, version=2)
    res = _predict(str(tmp_path / "hybrid"), *paths, "--json")  # the latest version: 2
    got = [json.loads(line) for line in res.stdout.strip().splitlines()]
    a = np.sqrt(_fold_scores(mlee.output_dir, fold, labels).loc[want.index[:4]].to_numpy())
    np.testing.assert_allclose([list(g["probabilities"].values()) for g in got], a / a.sum(1, keepdims=True),
                               atol=2e-3)
    np.testing.assert_allclose([g["emotion_b"] for g in got],
                               _fold_scores(cfg.output_dir, fold, labels).loc[want.index[:4]], atol=2e-3)
    assert "keras_ser" not in subprocess.run(
        [sys.executable, "-c", "import sys, tensorflow as tf; tf.saved_model.load(sys.argv[1]); "
         "print(' '.join(m for m in sys.modules if m.startswith('keras_ser')))", fused],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout


def test_keras_ser_fuse_refuses_parts_that_do_not_fit(ref_run, mlee_on_ref_folds, tmp_path, capsys):
    import shutil

    from keras_ser.cli.fuse import main

    _, summary = ref_run
    _, out = mlee_on_ref_folds
    other = tmp_path / "reordered"
    shutil.copytree(summary["export"], other)
    meta = json.loads((other / "keras_ser.json").read_text())
    meta["label_names"] = meta["label_names"][::-1]
    (other / "keras_ser.json").write_text(json.dumps(meta))
    cases = [((out["export"], other), "give other labels (or another order)"),
             ((summary["export"], summary["export"]), "both take openSMILE functionals"),
             ((out["export"], summary["export"], "--weight", "1.5"), "weight 1.5: must be in [0, 1]"),
             ((out["export"], tmp_path / "none"), "no such export folder"),
             ((out["export"], tmp_path / "run"), "a run folder without an export")]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    for args, message in cases:
        assert main([*map(str, args[:2]), str(tmp_path / "out"), *map(str, args[2:])]) == 2, message
        err = capsys.readouterr().err
        assert message in err and err.startswith("keras_ser-fuse: "), (message, err)
    assert not (tmp_path / "out").exists()


def test_speaker_normalisation_helps_acted_speech_and_removes_one_emotion_speakers(tmp_path, capsys):
    """Per-speaker statistics assume each speaker is heard in several emotions. Where each
    speaker is heard in one only, they hold the emotion: normalising by them leaves chance,
    and the run warns."""
    from keras_ser.corpora import synthetic
    from keras_ser.corpora.manifest import save_manifest
    from keras_ser.training.runner import run

    corpus = synthetic.generate(str(tmp_path / "corpus"), size="tiny", seed=3, n_speakers=8, per_speaker_emotion=6)
    man = corpus.manifest
    speakers = sorted(man["speaker"].unique())
    one = {s: ["neutral", "happy", "sad", "angry"][i % 4] for i, s in enumerate(speakers)}
    single = man[[one[s] == e for s, e in zip(man["speaker"], man["emotion"])]]
    save_manifest(single, str(tmp_path / "one.jsonl"))
    scores = {}
    for norm in ("train", "speaker"):
        cfg = load_config("functionals/synthetic", [
            "data.corpus=manifest", f"data.root={tmp_path / 'one.jsonl'}", "data.num_workers=1", "train.verbose=0",
            f"data.normalization={norm}", f"output_dir={tmp_path}/{norm}", "export.enabled=false"])
        scores[norm] = run(cfg)["mean"]["wa"]["mean"]
    assert scores["speaker"] <= 0.3 and scores["train"] >= scores["speaker"] + 0.1, scores  # chance: 0.25
    assert "have most of their utterances in one emotion" in capsys.readouterr().out


def test_functionals_config_errors():
    with pytest.raises(ConfigError, match="data.normalization: utterance is not defined"):
        load_config("functionals/synthetic", ["data.normalization=utterance"])
    with pytest.raises(ConfigError, match="functionals.feature_set: 'GeMAPS' is not one of"):
        load_config("functionals/synthetic", ["functionals.feature_set=GeMAPS"])
    with pytest.raises(ConfigError, match="model.params: 'C' not taken"):
        from keras_ser.training.runner import check_model_params

        check_model_params(load_config("functionals/synthetic", ["model.params={C: 1}"]))
