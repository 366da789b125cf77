"""StrengthNet: the model, its masked losses, ranking labels in a run, domain fusion, export."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_ser.config import load_config
from keras_ser.errors import ConfigError
from keras_ser.models.strengthnet import build_strengthnet
from tests.harness import AUDIO, audio_examples, by_frames, check_exports, model_case, run_case

SMALL = "model.params={filters: [4, 4, 8, 8], lstm_units: 8, dense_units: 8}"


def _strength_is_the_mean_of_the_real_frames(out, batch):
    for i, n in enumerate(batch["num_frames"]):
        np.testing.assert_allclose(out["strength"][i], out["frame_strength"][i, :n].mean(), rtol=1e-5)


FRAMES = dict(AUDIO, time_outputs={"frame_strength": [(1, by_frames)]}, zero_past_length=("frame_strength",),
              check=_strength_is_the_mean_of_the_real_frames)
KW = dict(num_classes=4, lstm_units=8, dense_units=8, filters=(4, 4, 8, 8))
CASES = [
    model_case("paper", build_strengthnet, dict(feature_dim=80, mean=np.linspace(-1, 1, 80), std=np.full(80, 3.0), **KW),
               audio_examples([150, 61], 80), **FRAMES),
    model_case("original_code", build_strengthnet, dict(feature_dim=257, original_input=True, recurrent_max_norm=1e-5, **KW),
               audio_examples([150, 61], 257), export=False, **FRAMES),
    model_case("mean_pooling_spec_augment", build_strengthnet,
               dict(feature_dim=80, emotion_pooling="mean", spec_augment={"time_mask_param": 5, "seed": 1}, **KW),
               audio_examples([150, 61], 80), export=False, **FRAMES),
    model_case("statistics_pooling_batch_norm", build_strengthnet,
               dict(feature_dim=80, emotion_pooling="statistics", batch_norm=True, **KW),
               audio_examples([150, 61], 80), export=False, **FRAMES),
    # data.functionals: one vector per utterance joined to both heads (padding the frames changes nothing)
    model_case("functionals_batch_norm", build_strengthnet,
               dict(feature_dim=80, emotion_pooling="mean", batch_norm=True, functionals_dim=6, functionals_dropout=0.2,
                    **KW),
               [{**ex, "functionals": np.linspace(-1, 1, 6, dtype="float32") * (i + 1)}
                for i, ex in enumerate(audio_examples([150, 61], 80))], export=False, **FRAMES),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_model(case, tmp_path):
    run_case(case, tmp_path)


def test_models_export_and_reload_without_keras_ser(tmp_path):
    check_exports(CASES, tmp_path)


@pytest.mark.parametrize("pooling", ["last", "mean", "statistics"])
def test_the_functionals_input_reaches_both_heads(pooling):
    """StrengthNet's hybrid: the strength (every frame) and the emotion both move with the
    functionals; without `functionals_dim` the model has no such input."""
    m = build_strengthnet(4, 80, lstm_units=8, dense_units=8, filters=(4, 4, 8, 8), emotion_pooling=pooling,
                          functionals_dim=6)
    ex = audio_examples([90], 80)[0]
    x = {"features": ex["features"][None], "num_frames": np.array([90], "int32"), "functionals": np.zeros((1, 6), "float32")}
    a = m.predict_on_batch(x)
    b = m.predict_on_batch({**x, "functionals": np.full((1, 6), 3.0, "float32")})
    assert np.abs(a["emotion"] - b["emotion"]).max() > 1e-3
    assert np.abs(a["frame_strength"] - b["frame_strength"]).min() > 0  # every frame, not only some
    assert "functionals" not in build_strengthnet(4, 80, lstm_units=8, dense_units=8, filters=(4, 4, 8, 8)).input


@pytest.mark.parametrize("original, pooling", [(False, "last"), (True, "last"), (False, "mean"),
                                               (False, "statistics")])
def test_options_build_what_they_say(original, pooling):
    import keras

    m = build_strengthnet(4, 257 if original else 80, lstm_units=8, dense_units=8, original_input=original,
                          recurrent_max_norm=1e-5 if original else None, emotion_pooling=pooling)
    names = {layer.name for layer in m.layers}
    if pooling == "statistics":
        assert "emotion_blstm" not in names and {"emotion_statistics", "emotion_dense"} <= names
        assert m.get_layer("emotion_dense").input.shape[-1] == 2 * 128  # mean and sd of the encoder's 128
    else:
        assert (m.get_layer("emotion_blstm").return_sequences) == (pooling == "mean")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in m.layers)
    assert sorted(m.output.keys()) == ["emotion", "frame_strength", "strength"]
    lstm = m.get_layer("strength_blstm").forward_layer
    assert (lstm.cell.recurrent_constraint is not None) == original


@pytest.mark.parametrize("pooling", ["last", "mean", "statistics"])
def test_batch_norm_sits_between_every_convolution_and_its_relu(pooling):
    import keras

    bn = build_strengthnet(4, 80, lstm_units=8, dense_units=8, emotion_pooling=pooling, batch_norm=True)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in bn.layers) == 12
    assert not bn.get_layer("conv1_1").use_bias and bn.get_layer("conv1_1").activation.__name__ == "linear"


@pytest.mark.parametrize("original", [False, True])
def test_spec_augment_masks_in_training_only_and_keeps_padding_out(original, tmp_path):
    """`spec_augment` (not in the paper) changes the training forward pass only: at inference the
    model equals the same weights without it, padded frames stay 0 in training too, and the
    layer's settings survive saving."""
    import keras

    from keras_ser.models.strengthnet import build_strengthnet

    d = 257 if original else 80
    kw = dict(lstm_units=8, dense_units=8, original_input=original, emotion_pooling="mean")
    aug = build_strengthnet(4, d, spec_augment={"freq_mask_param": 20, "time_mask_param": 30, "seed": 1}, **kw)
    plain = build_strengthnet(4, d, **kw)
    plain.set_weights(aug.get_weights())
    x = np.zeros((2, 120, d), "float32")
    x[0] = np.random.default_rng(0).standard_normal((120, d))
    x[1, :50] = np.random.default_rng(1).standard_normal((50, d))
    inputs = {"features": x, "num_frames": np.array([120, 50])}
    infer = aug(inputs, training=False)
    for k in ("frame_strength", "strength", "emotion"):
        np.testing.assert_allclose(infer[k], plain(inputs, training=False)[k], atol=1e-6)
    train = aug(inputs, training=True)
    assert np.all(np.asarray(train["frame_strength"])[1, 50:] == 0)
    # The masks themselves (the heads' training outputs also move with dropout): real values are
    # zeroed, padding stays zero.
    feats = keras.Model(aug.inputs, aug.get_layer("spec_augment").output)(inputs, training=True)
    assert np.mean(np.asarray(feats)[0] == 0) > 0.05 and np.all(np.asarray(feats)[1, 50:] == 0)
    path = str(tmp_path / "m.keras")
    aug.save(path)
    assert keras.saving.load_model(path, compile=False).get_layer("spec_augment").time_mask_param == 30


def test_masked_mae_ignores_padding():
    from keras_ser.losses import MaskedMAE

    y = np.array([[0.5, 0.5, 0.5, -1.0], [0.2, -1.0, -1.0, -1.0]], "float32")
    p = np.array([[0.4, 0.7, 0.5, 9.0], [0.0, 5.0, 5.0, 5.0]], "float32")
    # Utterance 1: (0.1 + 0.2 + 0) / 3 = 0.1; utterance 2: 0.2; batch mean 0.15.
    assert float(MaskedMAE()(y, p)) == pytest.approx(0.15, rel=1e-5)


def test_ranking_mae_scores_the_order_not_only_the_level():
    from keras_ser.losses import RankingMAE

    y = np.array([0.1, 0.3, 0.2], "float32")
    mae = np.abs(y - np.array([0.2, 0.2, 0.2])).mean()
    # Pairs with y_i - y_j > 0.05: (1, 0) and (1, 2) and (2, 0); all predictions level: each
    # pair costs softplus(0) = log 2, so the term is log 2 whatever the weighting.
    flat = np.full(3, 0.2, "float32")
    assert float(RankingMAE(0.0)(y, flat)) == pytest.approx(mae, rel=1e-5)
    assert float(RankingMAE(1.0, 0.1, 0.05)(y, flat)) == pytest.approx(mae + np.log(2), rel=1e-5)
    # By hand: with the margin 0.15 only the pair (1, 0) counts (0.3 - 0.1); predicted 0.3 - 0.0.
    p = np.array([0.0, 0.3, 0.25], "float32")
    want = np.abs(y - p).mean() + 2.0 * np.log1p(np.exp(-(0.3 - 0.0) / 0.1))
    assert float(RankingMAE(2.0, 0.1, 0.15)(y, p)) == pytest.approx(want, rel=1e-5)
    # Predictions above every target, in the right order or reversed: the same MAE, and the
    # ranking term tells them apart.
    right, wrong = np.array([0.4, 0.6, 0.5], "float32"), np.array([0.6, 0.4, 0.5], "float32")
    assert float(RankingMAE(0.0)(y, right)) == pytest.approx(float(RankingMAE(0.0)(y, wrong)), rel=1e-5)
    assert float(RankingMAE(1.0)(y, right)) < float(RankingMAE(1.0)(y, wrong)) - 0.5
    with pytest.raises(ValueError, match="temperature"):
        RankingMAE(1.0, temperature=0.0)


def test_strength_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="strength.per"):
        load_config("strengthnet/synthetic", ["strength.per=corpus"])
    with pytest.raises(ConfigError, match="strength.monitor"):
        load_config("strengthnet/synthetic", ["strength.monitor=val_mae"])
    with pytest.raises(ConfigError, match="model.params.emotion_pooling"):
        load_config("strengthnet/synthetic", ["model.params.emotion_pooling=max"])
    with pytest.raises(ConfigError, match="strength.loss_weights"):
        load_config("strengthnet/synthetic", ["strength.loss_weights={frame: 1}"])
    with pytest.raises(ConfigError, match=r"data.fuse\[0\]"):
        load_config("strengthnet/synthetic", ["data.fuse=[{name: emodb}]"])
    with pytest.raises(ConfigError, match="strength.rank_temperature"):
        load_config("strengthnet/synthetic", ["strength.rank_weight=1", "strength.rank_temperature=0"])
    with pytest.raises(ConfigError, match="strength.rank_weight"):
        load_config("strengthnet/synthetic", ["strength.rank_weight=-1"])


def test_rank_weight_adds_the_ranking_term_to_the_utterance_loss_only():
    import keras

    from keras_ser.losses import RankingMAE
    from keras_ser.training.strengthnet import compile_model

    def loss_of(*overrides):
        m = build_strengthnet(4, 80, lstm_units=8, dense_units=8, filters=(4, 4, 8, 8))
        return compile_model(m, load_config("strengthnet/synthetic", list(overrides))), m.loss

    _, paper = loss_of()
    assert type(paper["strength"]) is keras.losses.MeanAbsoluteError
    model, ranked = loss_of("strength.rank_weight=0.5", "strength.rank_temperature=0.1", "strength.rank_margin=0.02")
    assert type(ranked["strength"]) is RankingMAE and type(ranked["frame_strength"]) is type(paper["frame_strength"])
    assert (ranked["strength"].rank_weight, ranked["strength"].temperature, ranked["strength"].margin) == (0.5, 0.1, 0.02)
    x = {"features": np.random.default_rng(0).normal(size=(4, 40, 80)).astype("float32"),
         "num_frames": np.array([40, 30, 20, 40], "int32")}
    frames = np.where(np.arange(40)[None] < x["num_frames"][:, None], 0.5, -1.0).astype("float32")
    y = {"frame_strength": frames, "strength": np.array([0.2, 0.4, 0.6, 0.8], "float32"),
         "emotion": np.eye(4, dtype="float32")}
    assert np.isfinite(model.train_on_batch(x, y)[0])


def _emodb_like(tiny_corpus, root):
    """An Emo-DB-named tree (3 speakers) made of the tiny corpus's audio, for a second corpus."""
    codes = {"neutral": "N", "angry": "W", "happy": "F", "sad": "T"}
    man = tiny_corpus.manifest
    for s_i, (spk, code) in enumerate(zip(sorted(man["speaker"].unique())[:3], ["03", "08", "09"])):
        for emo, letter in codes.items():
            rows = man[(man["speaker"] == spk) & (man["emotion"] == emo)]
            for k, path in enumerate(rows["path"]):
                dst = os.path.join(root, "wav", f"{code}a0{k + 1}{letter}{'abcd'[s_i]}.wav")
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy(path, dst)
    return root


def _ravdess_like(tiny_corpus, root):
    """A RAVDESS-named tree (actors 01, 02) of the tiny corpus's last two speakers, with the
    intensity code from the synthetic truth: an unseen corpus with normal/strong intensity."""
    codes = {"neutral": "01", "happy": "03", "sad": "04", "angry": "05"}
    man = tiny_corpus.manifest
    for actor, spk in zip(["01", "02"], sorted(man["speaker"].unique())[-2:]):
        for emo, code in codes.items():
            rows = man[(man["speaker"] == spk) & (man["emotion"] == emo)]
            for k, (path, strength) in enumerate(zip(rows["path"], rows["strength"])):
                inten = "02" if emo != "neutral" and strength >= 0.55 else "01"
                name = f"03-01-{code}-{inten}-0{k % 2 + 1}-0{k // 2 + 1}-{actor}.wav"
                dst = os.path.join(root, f"Actor_{actor}", name)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy(path, dst)
    return root


def _cfg(tmp, tiny_corpus, *extra):
    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    return load_config("strengthnet/synthetic", [
        f"data.root={root}", "data.synthetic_size=tiny", f"data.records_dir={tmp}/records", "data.num_workers=0",
        "train.epochs=1", "train.verbose=0", "train.batch_size=8", SMALL, f"output_dir={tmp}/run", *extra])


@pytest.fixture(scope="module")
def fused_run(tiny_corpus, tmp_path_factory):
    from keras_ser.training.runner import run

    tmp = tmp_path_factory.mktemp("strength")
    emo_root = _emodb_like(tiny_corpus, str(tmp / "emodb"))
    rav_root = _ravdess_like(tiny_corpus, str(tmp / "ravdess"))
    cfg = _cfg(tmp, tiny_corpus, "data.emotions=[happy, sad, angry]", f"data.fuse=[{{corpus: emodb, root: {emo_root}}}]",
               f"data.eval_corpora=[{{corpus: ravdess, root: {rav_root}}}]")
    return cfg, run(cfg)


def test_fused_run_labels_each_corpus_and_splits_each(fused_run):
    from keras_ser.labels.ranking import StrengthLabeler

    cfg, summary = fused_run
    assert summary["corpus"] == "emodb+synthetic" and summary["folds_run"] == 1
    for corpus in ("synthetic", "emodb"):
        lab = StrengthLabeler.load(os.path.join(cfg.output_dir, "ranking", f"{corpus}.json"))
        assert set(lab.emotions) >= {"happy", "sad", "angry"} and len(lab.minimum) == 384  # IS09
        info = summary["strength_labels"][corpus]
        assert 0 <= info["order_accuracy_heldout"] <= 1 and info["order_accuracy_train"] > 0.9
    # The synthetic corpus knows the true strength: the labels' SRCC against it is reported.
    assert -1 <= summary["strength_labels"]["synthetic"]["srcc_labels_vs_truth"] <= 1
    assert -1 <= summary["strength_labels"]["synthetic"]["srcc_labels_vs_truth_pure"] <= 1
    fold = summary["folds"][0]
    assert {"mae", "lcc", "srcc", "ccc", "n"} <= set(fold["overall"]) and fold["overall"]["n"] == fold["test"]
    assert fold["emotion"]["n"] == fold["test"] and "srcc_vs_truth" in fold
    # The test fold spans both corpora, so each is also scored on its own.
    per = fold["per_corpus"]
    assert set(per) == {"synthetic", "emodb"} and per["emodb"]["overall"]["n"] + per["synthetic"]["overall"]["n"] == fold["test"]
    assert "srcc_vs_truth" in per["synthetic"] and "srcc_vs_truth" not in per["emodb"]
    import pandas as pd

    labels = pd.read_csv(os.path.join(cfg.output_dir, "ranking", "labels.csv"))
    emotional = labels[labels["emotion"].isin(["happy", "sad", "angry"])]
    assert emotional["strength_label"].between(0, 1).all()
    # Each corpus is split on its own: both are in every part of the fold.
    rec = json.load(open(os.path.join(cfg.output_dir, "metrics.json")))
    assert rec["folds"][0]["train"] > 0 and os.path.exists(os.path.join(cfg.output_dir, "plots", "strength_split-seed0.png"))


def test_per_utterance_predictions_are_written_and_match_the_metrics(fused_run):
    import pandas as pd

    from keras_ser.training import metrics as M

    cfg, summary = fused_run
    fold = summary["folds"][0]
    pred = pd.read_csv(os.path.join(cfg.output_dir, "folds", fold["fold"], "test_predictions.csv"))
    assert len(pred) == fold["test"] and pred["utterance_id"].is_unique
    assert set(pred["corpus"]) == {"synthetic", "emodb"} and set(pred["predicted_emotion"]) <= {"happy", "sad", "angry"}
    # The rows are the test utterances, each with its own label (the table's, not a shuffled one).
    labels = pd.read_csv(os.path.join(cfg.output_dir, "ranking", "labels.csv")).set_index("utterance_id")
    assert np.allclose(pred["strength_label"], labels.loc[pred["utterance_id"], "strength_label"], atol=1e-5)
    assert (pred["emotion"].to_numpy() == labels.loc[pred["utterance_id"], "emotion"].to_numpy()).all()
    assert M.mae(pred["strength_label"], pred["predicted_strength"]) == pytest.approx(fold["overall"]["mae"], abs=1e-5)
    assert np.mean(pred["emotion"] == pred["predicted_emotion"]) == pytest.approx(fold["emotion"]["wa"])
    scores = pred[[f"score_{e}" for e in ("happy", "sad", "angry")]].to_numpy()  # the emotion head, for late fusion
    np.testing.assert_allclose(scores.sum(1), 1, atol=1e-4)
    assert list(np.array(["happy", "sad", "angry"])[scores.argmax(1)]) == list(pred["predicted_emotion"])
    assert {"pure", "blend", "change"} <= set(pred) and not (pred["pure"] & (pred["blend"] | pred["change"])).any()
    syn = pred[pred["corpus"] == "synthetic"]
    assert syn["true_strength"].notna().all() and pred.loc[pred["corpus"] == "emodb", "true_strength"].isna().all()
    unseen = pd.read_csv(os.path.join(cfg.output_dir, "unseen", "ravdess", "predictions.csv"))
    assert len(unseen) == fold["unseen"]["ravdess"]["overall"]["n"] and set(unseen["corpus"]) == {"ravdess"}


def test_unseen_corpus_is_labelled_by_its_own_ranking_and_scored(fused_run):
    cfg, summary = fused_run
    unseen = summary["folds"][0]["unseen"]["ravdess"]
    assert unseen["overall"]["n"] == 2 * 3 * 4  # two actors, three emotions, four utterances
    assert "ravdess" in unseen["strength_labels"] and unseen["emotion"]["n"] == 24 and unseen["normalization"] == "train"
    # The training corpora's per-emotion ranking functions applied to it (the paper's R_corpus rows).
    assert {"R_synthetic", "R_emodb"} <= set(unseen) and unseen["R_emodb"]["n"] == 24
    assert unseen["intensity"]["n"] == 24 and 0 <= unseen["intensity"]["agreement"] <= 1
    assert 0 <= unseen["intensity"]["labels_agreement"] <= 1 and 0 <= unseen["intensity"]["labels_auc"] <= 1


def test_fused_folds_are_per_corpus_and_speaker_disjoint(fused_run, tiny_corpus):
    from keras_ser.training import strengthnet as strength
    from keras_ser.training.data import load_manifest

    cfg, _ = fused_run
    man = load_manifest(cfg)
    table = strength.label_table(cfg, man, np.where(man["emotion"] == "neutral", 0.0, 0.5), list(cfg.data.emotions))
    (fold,) = strength.fold_list(cfg, table)
    for part in (fold.train, fold.dev, fold.test):
        assert set(table.loc[part, "corpus"]) == {"synthetic", "emodb"}
    spk = table["speaker"]
    assert not set(spk[fold.train]) & set(spk[fold.test]) and not set(spk[fold.dev]) & set(spk[fold.test])


def test_export_serves_strength_from_waveforms(fused_run, tiny_corpus):
    cfg, summary = fused_run
    path = tiny_corpus.manifest["path"].iloc[5]
    code = f"""
import json, sys, numpy as np, soundfile as sf, tensorflow as tf
m = tf.saved_model.load({summary['export']!r})
w, sr = sf.read({path!r}, dtype="float32")
out = m.signatures["serving_default"](waveform=tf.constant(w[None]), num_samples=tf.constant([len(w)], tf.int32))
print(json.dumps({{k: list(v.shape) for k, v in out.items()}}))
print("keras_ser" in sys.modules)
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    shapes, loaded = out.stdout.strip().splitlines()[-2:]
    shapes = json.loads(shapes)
    assert shapes["strength"] == [1] and shapes["emotion"] == [1, 3] and shapes["frame_strength"][0] == 1
    assert loaded == "False"
    out = subprocess.run([sys.executable, "-m", "keras_ser.cli.predict", summary["export"], path],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\tstrength=" in out.stdout.strip().splitlines()[-1]


def test_frame_targets_are_masked_in_the_pipeline(fused_run):
    from keras_ser.training import strengthnet as strength
    from keras_ser.training.data import load_manifest, prepare_records

    cfg, _ = fused_run
    man = load_manifest(cfg)
    rs = prepare_records(cfg, man)
    table = strength.label_table(cfg, man, np.where(man["emotion"] == "neutral", 0.0, 0.25), list(cfg.data.emotions))
    x, y, _ = next(iter(strength.strength_dataset(rs, cfg, table.index[:8].tolist(), table)))
    n = np.asarray(x["num_frames"])
    frames = np.asarray(y["frame_strength"])
    for i, k in enumerate(n):
        assert np.all(frames[i, :k] == 0.25) and np.all(frames[i, k:] == -1.0)


def test_monitored_metric_falls_back_to_the_loss_without_a_strength_head():
    from keras_ser.training.strengthnet import monitored_metric

    assert monitored_metric("strength_mae", {"strength": 1.0, "emotion": 1.0}) == "val_strength_mae"
    assert monitored_metric("strength_mae", None) == "val_strength_mae"
    assert monitored_metric("strength_mae", {"strength": 0.0}) == "val_loss"
    assert monitored_metric("loss", {"strength": 1.0}) == "val_loss"


def test_unseen_manifest_corpora_get_their_own_records(tmp_path):
    from keras_ser.training.data import eval_records_config

    cfg = load_config("strengthnet/synthetic", [f"data.records_dir={tmp_path}/records/train"])
    a = eval_records_config(cfg, "manifest", str(tmp_path / "a.jsonl"))
    b = eval_records_config(cfg, "manifest", str(tmp_path / "sub" / "a.jsonl"))
    assert a.data.root == str(tmp_path / "a.jsonl") and a.data.speed_perturb == [] and a.data.fuse == []
    assert a.data.records_dir != b.data.records_dir and "eval-manifest-a-" in a.data.records_dir


def test_ablation_without_the_emotion_loss(tiny_corpus, tmp_path, monkeypatch):
    from keras_ser.training import loop
    from keras_ser.training.runner import run

    watched, fit = [], loop.fit
    monkeypatch.setattr(loop, "fit", lambda *a, monitor, **k: watched.append(monitor) or fit(*a, monitor=monitor, **k))
    cfg = _cfg(tmp_path, tiny_corpus, "strength.loss_weights={emotion: 0.0}", "strength.labels=manifest",
               "export.enabled=false", "strength.monitor=strength_mae")
    summary = run(cfg)
    assert watched == ["val_strength_mae"]  # the paper's stopping, not the preset's total dev loss
    assert summary["strength_labels"] == {"labels": "manifest"}
    # With the synthetic truth as labels, label SRCC against the truth is exactly 1.
    assert summary["folds"][0]["srcc_labels_vs_truth"] == pytest.approx(1.0)


def test_encoder_activations_do_not_vanish_at_initialisation():
    """12 ReLU convolutions without batch norm: with Glorot init the encoder output was ~1e-3 and
    the emotion head could not learn; He init keeps the scale (see build_strengthnet)."""
    import keras

    from keras_ser.models.strengthnet import build_strengthnet

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 120, 80)).astype("float32")  # z-normalised features
    n = np.array([120, 100, 80, 60], "int32")
    scales = {}
    for init in ("he_normal", "glorot_uniform"):
        keras.utils.set_random_seed(0)
        m = build_strengthnet(4, 80, conv_initializer=init)
        enc = keras.Model(m.inputs, m.get_layer("mask4_3").output)
        scales[init] = float(np.asarray(enc({"features": x, "num_frames": n})).std())
    assert scales["he_normal"] > 0.1 and scales["glorot_uniform"] < 0.02, scales


def test_a_corpus_without_neutral_speech_is_a_clear_error(tiny_corpus, tmp_path):
    from keras_ser.errors import CorpusError
    from keras_ser.training import strengthnet as strength

    cfg = _cfg(tmp_path, tiny_corpus)
    man = tiny_corpus.manifest
    no_neutral = man[man["emotion"] != "neutral"].head(12)
    with pytest.raises(CorpusError, match=r"^synthetic: .*no speaker has both 'neutral'"):
        strength.strength_labels(cfg, no_neutral, str(tmp_path / "out"))


def test_the_ranking_labels_and_the_functionals_input_share_one_extraction(tiny_corpus, tmp_path, monkeypatch):
    """StrengthNet's ranking labels (a file with undefined functionals gets no label) and
    `data.functionals` of the same set (undefined values as 0) read one cache per corpus, keyed
    by the files, not the labels: a relabelled manifest extracts nothing again."""
    import pandas as pd

    from keras_ser.errors import CorpusError
    from keras_ser.training import strengthnet as strength
    from keras_ser.training import utterance_features as F
    from tfrecords_tools import opensmile_features as O

    monkeypatch.setenv("KERAS_SER_DATA", str(tmp_path / "data"))
    pools = []
    real = O.spawn_pool
    monkeypatch.setattr(O, "spawn_pool", lambda *a, **k: pools.append(a) or real(*a, **k))
    cfg = _cfg(tmp_path, tiny_corpus)
    man = tiny_corpus.manifest.head(10)
    X, names = strength.functionals(cfg, man)
    assert len(pools) == 1 and X.shape == (10, 384) and np.isfinite(X).all()
    relabelled = man.assign(emotion="neutral")
    Z, _, errors = F.functionals(cfg, relabelled, "IS09")
    assert len(pools) == 1 and not errors
    np.testing.assert_array_equal(Z, X)
    assert len(os.listdir(tmp_path / "data" / "functionals")) == 1
    F.functionals(cfg, man.head(9), "IS09")  # other files: a cache of their own
    assert len(pools) == 2 and len(os.listdir(tmp_path / "data" / "functionals")) == 2
    # a corpus none of whose files gives functionals: named, with the first file's reason
    (tmp_path / "a.wav").write_text("not audio")
    broken = pd.concat([man.head(4), man.head(2).assign(corpus="broken", path=[str(tmp_path / "a.wav"),
                                                                           str(tmp_path / "b.wav")])])
    with pytest.raises(CorpusError, match=r"^broken: openSMILE gave IS09 functionals for none of its 2 files "
                                          r"\(first: .*a.wav: cannot decode audio"):
        strength.functionals(cfg, broken)


def test_the_original_frontend_switches_on_the_original_input():
    """strengthnet_original features (257 linear bins, no log) get the code's Dense(257), no
    normalisation: the layout follows the records' frontend, and a model.params that says
    otherwise is a config error before any data is read."""
    import types

    from keras_ser.audio.frontends import get_frontend_config
    from keras_ser.errors import ConfigError
    from keras_ser.training import strengthnet as strength
    from keras_ser.training.runner import check_model_params

    for frontend, layer, dim in (("strengthnet_original", "input_projection", 257), ("strengthnet", "normalization", 80)):
        cfg = load_config("strengthnet/synthetic", [f"data.frontend={frontend}", SMALL])
        rs = types.SimpleNamespace(frontend=get_frontend_config(frontend).to_dict(), label_names=["a", "b"],
                                   feature_dim=dim)
        stats = types.SimpleNamespace(mean=np.zeros(dim), std=lambda dim=dim: np.ones(dim))
        model = strength.build_model(cfg, rs, stats)
        assert model.get_layer(layer) is not None
        check_model_params(cfg)
        original = frontend == "strengthnet_original"
        check_model_params(load_config("strengthnet/synthetic", [f"data.frontend={frontend}",
                                                                 f"model.params.original_input={str(original).lower()}"]))
        contradicting = load_config("strengthnet/synthetic", [f"data.frontend={frontend}",
                                                              f"model.params.original_input={str(not original).lower()}"])
        with pytest.raises(ConfigError, match=f"model.params.original_input: {not original}.*frontend '{frontend}'"):
            check_model_params(contradicting)


def test_table1_experiment_reads_a_fused_run(fused_run):
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "experiments", "strengthnet_table1.py")
    spec = importlib.util.spec_from_file_location("strengthnet_table1", path)
    table1 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table1)
    cfg, summary = fused_run
    row = table1.row_summary("fused", summary, cfg.output_dir)
    assert row["test"]["n"] == summary["folds"][0]["test"] and row["epochs"] == 1 and row["best_epoch"] == 1
    assert row["settings"]["epochs"] == 1 and row["settings"]["batch_size"] == 8  # from the run's config.yaml
    assert cfg.strength.monitor == "loss"  # the strengthnet/synthetic preset's
    assert row["settings"]["monitor"] == "loss" and row["settings"]["monitored"] == "val_loss"
    assert summary["folds"][0]["monitor"] == "val_loss"
    assert set(row) >= {"test_emodb", "test_synthetic", "unseen_ravdess"} and "emotion_wa" in row["test_emodb"]
    assert set(row["unseen_ravdess"]) >= {"R_emodb", "R_synthetic", "intensity_agreement"}
    md = table1.markdown({"fused": row})
    assert md.count("\n") == 2 and "ravdess" in md and "R_emodb" in md


def test_cue_ceilings_use_the_oracle_features_they_name():
    """experiments/ranking_labels.py's cue ceilings on a fabricated corpus whose level is exactly
    the synthesizer's energy profile times the strength: the level and the emotion order the pure
    utterances; only the oracles that know the change point and the blend recover the others."""
    import importlib.util

    import pandas as pd

    from keras_ser.corpora.synthetic import PROFILES

    path = os.path.join(os.path.dirname(__file__), "..", "experiments", "ranking_labels.py")
    spec = importlib.util.spec_from_file_location("ranking_labels", path)
    ranking_labels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ranking_labels)
    rng = np.random.default_rng(0)
    emotions = ["happy", "sad", "angry", "surprise"]
    rows, waves = [], {}
    for spk in range(6):
        for emotion in emotions:
            for i in range(40):
                s = float(rng.uniform(0.1, 1.0))
                blend = emotions[(emotions.index(emotion) + 1 + i % 3) % 4] if i % 4 == 1 else None
                w = float(rng.uniform(0.15, 0.45)) if blend else 0.0
                db = -26 + s * ((1 - w) * PROFILES[emotion].energy + w * (PROFILES[blend].energy if blend else 0))
                wav = np.full(16000, 10 ** (db / 20), np.float32)
                segments = [[0.0, 1.0, emotion, s]]
                if i % 4 == 2:  # neutral up to a change point
                    cut = float(rng.uniform(0.2, 0.6))
                    wav[:int(cut * 16000)] = 10 ** (-26 / 20)
                    segments = [[0.0, cut, "neutral", 0.0], [cut, 1.0, emotion, s]]
                path = f"u{len(rows)}.wav"
                waves[path] = wav
                rows.append({"speaker": f"s{spk}", "emotion": emotion, "strength": s, "path": path,
                             "blend": blend, "blend_weight": w, "emotion_segments": segments})
    rows += [{"speaker": f"s{spk}", "emotion": "neutral", "strength": 0.0, "path": "n.wav", "blend": None,
              "blend_weight": 0.0, "emotion_segments": [[0.0, 1.0, "neutral", 0.0]]} for spk in range(6)]
    waves["n.wav"] = np.full(16000, 10 ** (-26 / 20), np.float32)
    man = pd.DataFrame(rows)
    level = np.array([ranking_labels._active_level_db(waves[p]) for p in man["path"]])
    res = ranking_labels.cue_ceilings(man, level, waves.__getitem__)
    plain, segment, full = res.values()
    assert set(plain) == {"all", "pure", "blend", "change"}
    assert plain["pure"] > 0.9 and plain["blend"] < 0.8
    assert segment["change"] > 0.95 and segment["change"] > plain["change"] + 0.05
    assert full["blend"] > segment["blend"] + 0.1 and full["all"] > 0.9 > plain["all"]


def test_truth_is_also_scored_on_pure_utterances_only():
    import numpy as np
    import pandas as pd

    from keras_ser.training.strengthnet import _metrics, label_table

    man = pd.DataFrame({
        "utterance_id": ["a", "b", "c", "d", "e", "f"], "emotion": ["happy"] * 6,
        "strength": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "intensity": ["normal"] * 6,
        "blend": [None, "sad", None, None, None, None],
        "emotion_segments": [[[0, 1, "happy", 0.1]], [[0, 1, "happy", 0.2]], [[0, 1, "happy", 0.3]],
                             [[0, 0.5, "neutral", 0.0], [0.5, 1, "happy", 0.4]], [[0, 1, "happy", 0.5]],
                             [[0, 1, "happy", 0.6]]],
    })
    table = label_table(None, man, np.linspace(0, 1, 6), ["happy"])
    assert table["pure"].tolist() == [True, False, True, False, True, True]
    assert table["blend"].tolist() == [False, True, False, False, False, False]
    assert table["change"].tolist() == [False, False, False, True, False, False]
    # Predictions in order on the pure four, reversed on the blend and the change.
    s_pred = np.array([0.1, 0.9, 0.3, 0.0, 0.5, 0.6])
    p = {"s_true": table["strength_label"].to_numpy(), "s_pred": s_pred, "e_true": np.zeros(6, int),
         "e_prob": np.ones((6, 1)), "truth": table["true_strength"].to_numpy(), "strong": np.full(6, np.nan),
         "pure": table["pure"].to_numpy()}
    res = _metrics(None, p, ["happy"])
    assert res["srcc_vs_truth_pure"] == pytest.approx(1.0) and res["n_pure"] == 4
    assert res["srcc_vs_truth"] < 0.6
    assert "srcc_vs_truth_blend" not in res  # one blended utterance: no SRCC
    # The blend and change subsets are scored like the pure one where they have three or more.
    p.update(blend=np.array([False, True, True, True, False, False]), change=np.zeros(6, bool))
    res = _metrics(None, p, ["happy"])
    assert res["n_blend"] == 3 and res["srcc_vs_truth_blend"] == pytest.approx(-1.0) and "n_change" not in res
    # A corpus that knows no blends or changes counts every utterance as pure.
    assert label_table(None, man.drop(columns=["blend", "emotion_segments"]), np.zeros(6), ["happy"])["pure"].all()


def test_a_run_stopped_before_its_test_metrics_resumes_without_retraining(fused_run):
    """Killed after training but before the fold's metrics.json: the rerun reloads the trained
    model (history unchanged), evaluates it, and writes the same metrics."""
    from keras_ser.training.runner import run

    cfg, summary = fused_run
    fold_dir = os.path.join(cfg.output_dir, "folds", summary["folds"][0]["fold"])
    history = open(os.path.join(fold_dir, "strengthnet", "history.csv")).read()
    os.remove(os.path.join(fold_dir, "metrics.json"))
    again = run(cfg)
    assert open(os.path.join(fold_dir, "strengthnet", "history.csv")).read() == history
    assert os.path.exists(os.path.join(fold_dir, "metrics.json"))
    fold, first = again["folds"][0], summary["folds"][0]
    assert fold["overall"] == pytest.approx(first["overall"]) and fold["emotion"]["wa"] == first["emotion"]["wa"]
    assert fold["unseen"].keys() == first["unseen"].keys()


def test_run_means_carry_the_intensity_auc_when_every_fold_has_it():
    """RAVDESS's normal-vs-strong AUC (predictions and labels) is averaged over the folds, like
    the strength and emotion metrics; a fold without it (no intensity codes) leaves it out."""
    from keras_ser.training.strengthnet import fold_means

    def fold(auc=None):
        r = {"overall": {"mae": 0.1, "srcc": 0.5, "lcc": 0.4, "ccc": 0.3}, "emotion": {"wa": 0.6, "ua": 0.55}}
        if auc is not None:
            r["intensity"] = {"agreement": 0.5, "auc": auc, "labels_auc": auc + 0.1}
        return r

    means = dict(fold_means([fold(0.7), fold(0.8)]))
    assert [means["intensity_auc"](r) for r in (fold(0.7), fold(0.8))] == [0.7, 0.8]
    assert means["intensity_labels_auc"](fold(0.7)) == pytest.approx(0.8)
    assert means["emotion_wa"](fold()) == 0.6 and means["srcc"](fold()) == 0.5
    assert "intensity_auc" not in dict(fold_means([fold(0.7), fold()]))


def test_unseen_corpus_is_scored_when_the_last_epoch_is_kept(tiny_corpus, tmp_path):
    """`train.select=last` trains on copies of the folds (development merged into training); the
    first fold's model is still scored on the unseen corpus (it was silently skipped)."""
    from keras_ser.training.runner import run

    rav_root = _ravdess_like(tiny_corpus, str(tmp_path / "ravdess"))
    cfg = _cfg(tmp_path, tiny_corpus, "data.emotions=[happy, sad, angry]", "train.select=last", "export.enabled=false",
               f"data.eval_corpora=[{{corpus: ravdess, root: {rav_root}}}]")
    fold = run(cfg)["folds"][0]
    assert fold["unseen"]["ravdess"]["overall"]["n"] == 24 and "auc" in fold["unseen"]["ravdess"]["intensity"]


@pytest.mark.parametrize("labels", ["ranking", "manifest"])
def test_an_unseen_corpus_without_strength_labels_is_refused_before_training(labels, tiny_corpus, tmp_path):
    """StrengthNet scores an unseen corpus against its own strength labels: unlabelled audio is
    refused, naming the corpus, before any fold is trained (the classifiers predict it instead)."""
    from keras_ser.corpora.manifest import save_manifest
    from keras_ser.errors import CorpusError
    from keras_ser.training.runner import run

    man = tiny_corpus.manifest.assign(emotion=None, strength=np.nan, corpus="mine")
    save_manifest(man, str(tmp_path / "mine.jsonl"))
    cfg = _cfg(tmp_path, tiny_corpus, f"strength.labels={labels}",
               f"data.eval_corpora=[{{corpus: manifest, root: {tmp_path}/mine.jsonl}}]")
    with pytest.raises(CorpusError, match="data.eval_corpora: mine: StrengthNet scores an unseen corpus .* keras_ser-predict"):
        run(cfg)
    assert not os.path.exists(tmp_path / "run" / "folds" / "split-seed0" / "strengthnet")


def test_functionals_as_a_second_input_in_the_folds_and_on_an_unseen_corpus(tiny_corpus, tmp_path):
    """data.functionals: StrengthNet's hybrid takes each utterance's openSMILE functionals,
    standardised on the fold's training utterances (development ones too with select last);
    the unseen corpus gets its own in that scaler's space; nothing is exported."""
    import keras
    import pandas as pd

    from keras_ser.training import data
    from keras_ser.training import strengthnet as strength
    from keras_ser.training.runner import run
    from keras_ser.training.utterance_features import Functionals

    rav_root = _ravdess_like(tiny_corpus, str(tmp_path / "ravdess"))
    cfg = _cfg(tmp_path, tiny_corpus, "data.emotions=[happy, sad, angry]", "train.select=last", "export.enabled=false",
               "data.functionals=eGeMAPSv02", "data.num_workers=1",
               f"data.eval_corpora=[{{corpus: ravdess, root: {rav_root}}}]")
    summary = run(cfg)
    assert summary["functionals"] == "eGeMAPSv02" and not summary.get("export")
    fold = summary["folds"][0]
    assert fold["unseen"]["ravdess"]["overall"]["n"] == 24
    model = keras.models.load_model(tmp_path / "run" / "folds" / fold["fold"] / "strengthnet" / "best.keras", compile=False)
    assert tuple(model.input["functionals"].shape) == (None, 88)
    # the written predictions are the model's on the standardised functionals of the fold's scaler
    d = data.load(cfg)
    train = json.load(open(tmp_path / "run" / "folds.json"))["folds"][0]
    _, fz = Functionals(cfg, d.corpus).fold(train["train"] + train["dev"])
    pred = pd.read_csv(tmp_path / "run" / "folds" / fold["fold"] / "test_predictions.csv")
    table = pd.read_csv(tmp_path / "run" / "ranking" / "labels.csv").set_index("utterance_id")
    tab = table.loc[pred["utterance_id"]].assign(utterance_id=pred["utterance_id"].to_numpy(), true_strength=np.nan,
                                                 intensity=None, label=0, strength_label=0.5)
    again = strength.predict(model, strength.strength_dataset(d.records, cfg, tab.index.tolist(), tab, extra=True,
                                                              functionals=fz))
    np.testing.assert_allclose(again["s_pred"][np.argsort(again["position"])], pred["predicted_strength"], atol=1e-4)
