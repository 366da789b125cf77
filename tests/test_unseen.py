"""data.eval_corpora for every classifier: each fold's model scored on corpora it never saw,
restricted to the labels it knows, with the normalisation of the unseen corpus stated."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from keras_ser.config import load_config
from keras_ser.errors import ConfigError

SMALL = {
    "mlee": "{conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], lstm_units: 8}",
    "fg_cme": "{conv_filters: [8, 8, 8], lstm_units: 8, semantic_units: 8, hidden_units: 8, embedding_dim: 8}",
    "epr": "{config: A, width: 0.0625, dense_units: [16], dropout: 0.0}",
    "functionals": "{}",
}


def _unseen_manifest(tmp_path):
    """Another synthetic corpus (other speakers and sentences) without 'sad' and with 'surprise'."""
    from keras_ser.corpora import synthetic
    from keras_ser.corpora.manifest import save_manifest

    man = synthetic.generate(str(tmp_path / "other"), size="tiny", seed=7).manifest
    man = man[man["emotion"] != "sad"].assign(corpus="other")
    save_manifest(man, str(tmp_path / "other.jsonl"))
    return str(tmp_path / "other.jsonl"), man


def _unlabelled_manifest(tmp_path, man):
    """The unseen corpus `man` as a user's own corpus 'mine', without labels."""
    from keras_ser.corpora.manifest import save_manifest

    man = man.assign(emotion=None, corpus="mine")
    save_manifest(man, str(tmp_path / "mine.jsonl"))
    return str(tmp_path / "mine.jsonl"), man


def _cfg(preset, tmp, tiny_corpus, unseen, *extra):
    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    system = preset.split("/")[0]
    corpora = ", ".join(f"{{corpus: manifest, root: {u}}}" for u in ([unseen] if isinstance(unseen, str) else unseen))
    return load_config(preset, [
        f"data.root={root}", "data.synthetic_size=tiny", f"data.records_dir={tmp}/records/train", "data.num_workers=1",
        "train.epochs=1", "train.verbose=0", "protocol.max_folds=2", f"model.params={SMALL[system]}",
        "export.enabled=false", f"output_dir={tmp}/run", f"data.eval_corpora=[{corpora}]",
        "protocol.min_fold_utterances=2", *extra])


@pytest.mark.parametrize("preset, extra", [
    ("mlee/synthetic", ["data.eval_normalization=corpus"]),
    ("fg_cme/synthetic", ["model.name=cnn_pool", "protocol.k=4", "model.params={conv_filters: [8, 8, 8], hidden_units: 8}",
                          "data.eval_adapt=batchnorm"]),  # batch-norm statistics of the unseen corpus
    ("functionals/synthetic", ["data.eval_normalization=speaker"]),
    ("functionals/synthetic", ["data.eval_normalization=corpus", "data.eval_adapt=self_training"]),
    ("epr/synthetic", ["epr.stages=1", "epr.inner_folds=2", "protocol.k=4"]),
])
def test_every_fold_s_model_is_scored_on_the_unseen_corpus(preset, extra, tiny_corpus, tmp_path, capsys):
    """MLEE's run also predicts an unlabelled corpus beside the labelled one (as in
    `test_an_unlabelled_corpus_is_predicted_not_scored`, one training run for both)."""
    from keras_ser.training.runner import run

    path, man = _unseen_manifest(tmp_path)
    mine = preset == "mlee/synthetic"
    summary = run(_cfg(preset, tmp_path, tiny_corpus, [path, _unlabelled_manifest(tmp_path, man)[0]] if mine else path,
                       *extra))
    if mine:
        _check_unlabelled(summary, preset, man.assign(emotion=None), tmp_path, capsys.readouterr().out)
    u = summary["unseen"]["other"]
    known = man[man["emotion"].isin(["neutral", "happy", "angry"])]
    assert u["models"] == 2 and u["n"] == len(known) and u["scored"] == len(man)
    assert u["missing_labels"] == ["sad"] and u["left_out"] == {"surprise": int((man["emotion"] == "surprise").sum())}
    assert set(u["mean"]) == {"wa", "ua", "macro_f1"} and 0 <= u["pooled"]["wa"] <= 1
    assert u["normalization"] == (extra[0].split("=")[1] if "eval_normalization" in extra[0] else "train")
    assert u["adapt"] == next((e.split("=")[1] for e in extra if e.startswith("data.eval_adapt=")), None)
    fold = summary["folds"][0]
    assert np.asarray(fold["unseen"]["other"]["confusion"])[2].sum() == 0  # no 'sad' to recall
    pred = pd.read_csv(tmp_path / "run" / "folds" / fold["fold"] / "unseen" / "other" / "predictions.csv")
    # every utterance predicted, 'surprise' too (left out of the metrics, not of the predictions)
    assert len(pred) == len(man) and set(pred["emotion"]) == {"neutral", "happy", "angry", "surprise"}
    assert set(pred["utterance_id"]) == set(man["utterance_id"])
    kept = pred["emotion"] != "surprise"
    wa = float((pred["predicted"][kept] == pred["emotion"][kept]).mean())
    assert wa == pytest.approx(fold["unseen"]["other"]["wa"])  # the metrics are those of the labelled rows
    assert json.load(open(tmp_path / "run" / "metrics.json"))["unseen"]["other"]["n"] == len(known)


def test_unseen_corpus_normalisation_is_checked(tiny_corpus):
    with pytest.raises(ConfigError, match="data.eval_normalization: 'corpus', but the model is trained with"):
        load_config("mlee/synthetic", ["data.normalization=speaker", "data.eval_normalization=corpus"])


@pytest.mark.parametrize("preset, extra", [
    ("functionals/synthetic", ["data.eval_normalization=speaker", "data.eval_adapt=self_training"]),
])  # and MLEE's, in test_every_fold_s_model_is_scored_on_the_unseen_corpus
def test_an_unlabelled_corpus_is_predicted_not_scored(preset, extra, tiny_corpus, tmp_path, capsys):
    """A user's own audio without labels (or with none of the model's) as an unseen corpus: every
    utterance predicted, no metrics, said so."""
    from keras_ser.training.runner import run

    path, man = _unlabelled_manifest(tmp_path, _unseen_manifest(tmp_path)[1])
    summary = run(_cfg(preset, tmp_path, tiny_corpus, path, *extra))
    _check_unlabelled(summary, preset, man, tmp_path, capsys.readouterr().out)


def _check_unlabelled(summary, preset, man, tmp_path, out):
    u = summary["unseen"]["mine"]
    assert u["n"] == 0 and u["scored"] == len(man) and "mean" not in u
    assert u["left_out"] == {"none": len(man)} and len(u["missing_labels"]) == 4
    assert "mine has none of the model's labels" in out and f"{len(man)} utterances predicted" in out
    assert f"\n{preset.split('/')[0]} on synthetic (" in out  # the headline names the system, not the corpus
    fold = summary["folds"][0]["fold"]
    pred = pd.read_csv(tmp_path / "run" / "folds" / fold / "unseen" / "mine" / "predictions.csv")
    assert set(pred["utterance_id"]) == set(man["utterance_id"]) and pred["emotion"].isna().all()
    scores = pred[[f"score_{e}" for e in summary["labels"]]].to_numpy()
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-4)
    assert set(pred["predicted"]) <= set(summary["labels"])


def test_corpus_normalisation_maps_the_unseen_corpus_into_the_training_space(tiny_corpus, tmp_path):
    """eval_normalization=corpus: the unseen corpus standardised by its own statistics, then put in
    the training statistics' space, which the model's own normalisation removes again."""
    import tensorflow as tf

    from keras_ser.audio.normalization import FeatureStats
    from keras_ser.training import data

    path, _ = _unseen_manifest(tmp_path)
    cfg = _cfg("mlee/synthetic", tmp_path, tiny_corpus, path, "data.eval_normalization=corpus")
    u = data.Unseen(cfg, cfg.data.eval_corpora[0])
    rs = u.records
    train = FeatureStats(10, np.full(400, 200.0), np.full(400, 10 * (400.0 + 9.0)))  # mean 20, sd 3
    fn = data.eval_normalizer(cfg, rs, train)
    frames = []
    for ex in rs.dataset(rs.files(), batch_size=None):
        out = fn(dict(ex, utterance_id=tf.constant(ex["utterance_id"])))
        frames.append(out["features"].numpy()[: int(ex["num_frames"])])
    allf = np.concatenate(frames)
    np.testing.assert_allclose(allf.mean(0), 20.0, atol=1e-2)
    np.testing.assert_allclose(allf.std(0), 3.0, rtol=1e-2)


def test_cnn_pool_with_the_functionals_as_a_second_input(tiny_corpus, tmp_path):
    """data.functionals: each utterance's openSMILE functionals, standardised on the fold's
    training utterances, enter cnn_pool beside the frames, in the folds and on unseen corpora."""
    import keras

    from keras_ser.training import data
    from keras_ser.training.runner import run
    from keras_ser.training.utterance_features import Functionals

    path, man = _unseen_manifest(tmp_path)
    cfg = _cfg("fg_cme/synthetic", tmp_path, tiny_corpus, path, "model.name=cnn_pool", "protocol.k=4",
               "model.params={conv_filters: [8, 8, 8], hidden_units: 8}", "data.functionals=eGeMAPSv02",
               "data.eval_normalization=corpus")
    summary = run(cfg)
    assert summary["functionals"] == "eGeMAPSv02" and not summary.get("export")
    assert summary["unseen"]["other"]["n"] == int(man["emotion"].isin(["neutral", "happy", "angry"]).sum())
    fold = summary["folds"][0]
    model = keras.models.load_model(tmp_path / "run" / "folds" / fold["fold"] / "best.keras", compile=False)
    assert tuple(model.input["functionals"].shape) == (None, 88)
    # the fold's scaler: its training utterances come out standardised, the others in its space
    corpus = data.load(cfg).corpus
    train = json.load(open(tmp_path / "run" / "folds.json"))["folds"][0]["train"]
    scaler, fz = Functionals(cfg, corpus).fold(train)
    z = np.stack([fz[u] for u in train])
    assert np.allclose(z.mean(0), 0, atol=1e-4) and np.allclose(z.std(0)[scaler.scale_ > 1e-6], 1, atol=1e-3)
    other = Functionals(cfg, corpus).unseen(data.Unseen(cfg, cfg.data.eval_corpora[0]), scaler)
    zo = np.stack(list(other.values()))  # eval_normalization=corpus: its own statistics, over all its utterances
    assert len(other) == summary["unseen"]["other"]["scored"] and abs(zo.mean()) < 0.3


@pytest.mark.parametrize("extra, message", [
    (["data.functionals=eGeMAPSv02"], "a second input of FG_CME's cnn_pool baseline and of StrengthNet only, not mlee"),
    (["system=fg_cme", "model.name=cnn_pool", "data.functionals=eGeMAPSv02"], "cannot be exported"),
    (["system=fg_cme", "model.name=cnn_pool", "export.enabled=false", "data.functionals=GeMAPS"],
     "data.functionals: 'GeMAPS' is not one of"),
])
def test_functionals_input_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config("mlee/synthetic", extra)


def test_self_training_learns_the_unseen_corpus_s_own_cue_class_by_class():
    """functionals.self_trained: two classes; on the unseen corpus the training corpus's cue
    (feature 0) is shifted and weaker, and a cue of its own (feature 1, noise in training)
    separates them. Refitted on its own surest predictions, each class's share in turn (labels
    never given), the classifier learns that cue and does better there, and still knows the
    training corpus."""
    from unittest import mock

    from keras_ser.training import functionals as FN

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    X = np.c_[np.where(y == 1, 1.0, -1.0) + rng.standard_normal(400), rng.standard_normal((400, 3))]
    y_new = np.repeat([0, 1], 150)
    X_new = np.c_[np.where(y_new == 1, 1.0, -1.0) + 0.8 + rng.standard_normal(300),
                  np.where(y_new == 1, 1.5, -1.5) + rng.standard_normal(300), rng.standard_normal((300, 2))]
    cfg = load_config("functionals/synthetic")  # C = 0.1, shares 0.2, 0.4, 0.6
    before = FN.make_classifier(cfg).fit(X, y)
    after = FN.self_trained(cfg, X, y, X_new, 2, before)
    acc = [(FN.scores(p, X_new, 2).argmax(1) == y_new).mean() for p in (before, after)]
    assert acc[0] < 0.83 and acc[1] > acc[0] + 0.04, acc
    w_before, w_after = before[-1].coef_[0, 1], after[-1].coef_[0, 1]  # feature 1's weight: 0.11, then 0.44
    assert w_after > 0.3 and w_after > 3 * abs(w_before), (w_before, w_after)
    assert (FN.scores(after, X, 2).argmax(1) == y).mean() > 0.8

    # one round of share 0.5 refits on the training rows and ceil(half) of each predicted class
    pred, sizes, make = FN.scores(before, X_new, 2).argmax(1), [], FN.make_classifier

    def recording(c):
        p = make(c)
        fit = p.fit
        p.fit = lambda A, b: (sizes.append(len(b)), fit(A, b))[1]
        return p
    with mock.patch.object(FN, "make_classifier", recording):
        FN.self_trained(load_config("functionals/synthetic", ["functionals.self_training=[0.5]"]), X, y, X_new, 2, before)
    assert sizes == [400 + sum(int(np.ceil(0.5 * (pred == k).sum())) for k in (0, 1))]


@pytest.mark.parametrize("extra, message", [
    (["system=mlee"], "for the reference \\(system functionals\\), not mlee"),
    (["functionals.self_training=[0.5, 1.5]"], "must list shares in \\(0, 1\\]"),
    (["functionals.self_training=[]"], "must list shares"),
])
def test_self_training_config_errors(extra, message):
    from keras_ser.config import validate

    with pytest.raises(ConfigError, match=message):
        validate(load_config("functionals/synthetic", ["data.eval_adapt=self_training",
                                                       "data.eval_corpora=[{corpus: synthetic}]", *extra]))
