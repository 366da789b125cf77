"""MLEE variants: recipes, frozen encoders, fusion, speed perturbation and targets in the pipeline."""

import json
import math
import os

import numpy as np
import pytest

from keras_ser.config import load_config
from keras_ser.models.mlee import build_mlee_classifier, build_mlee_encoder
from tests.harness import AUDIO, audio_examples, check_exports, model_case, run_case

SMALL = ("model.params={conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], "
         "lstm_units: 8, attention_units: 8}")


TINY = dict(conv_blocks=((4, (12, 16), (2, 2)), (4, (8, 12), (1, 1)), (4, (5, 7), (1, 1))), lstm_units=8,
            attention_units=4)


def _frozen_encoders():
    encoders = [build_mlee_encoder(40, name="dominant_encoder", **TINY), build_mlee_encoder(40, name="mlee_encoder", **TINY)]
    for e in encoders:
        e.trainable = False
    return encoders


def _attention_sums_to_one_over_real_frames(out, batch):
    att = out["attention"]
    assert np.allclose(att.sum(-1), 1.0, atol=1e-5)
    for i, n in enumerate(batch["num_frames"]):
        assert np.all(att[i, :, math.ceil(n / 16):] == 0)  # time is downsampled 16x (ceil at each step)


ATTENTION = dict(AUDIO, time_outputs={"attention": [(2, lambda ex: math.ceil(int(ex["num_frames"]) / 16))]})
EXAMPLES = audio_examples([150, 90, 33], 40)
CASES = [
    model_case("classifier", build_mlee_classifier, dict(num_classes=4, feature_dim=40, return_attention=True,
                                                         mean=np.linspace(-1, 1, 40), std=np.full(40, 2.0), **TINY),
               EXAMPLES, check=_attention_sums_to_one_over_real_frames, **ATTENTION),
    model_case("existence", build_mlee_classifier, dict(num_classes=4, feature_dim=40, activation="sigmoid", **TINY),
               EXAMPLES, export=False, **AUDIO),
    model_case("encoder", build_mlee_encoder, dict(feature_dim=40, dropout=0.1, **TINY), EXAMPLES, **ATTENTION),
    model_case("fusion", lambda: build_mlee_classifier(4, 40, encoder=_frozen_encoders(), return_attention=True), {},
               EXAMPLES, **ATTENTION),
    model_case("spec_augment", build_mlee_classifier,
               dict(num_classes=4, feature_dim=40, spec_augment={"freq_mask_param": 6, "seed": 1}, **TINY),
               EXAMPLES, export=False, **AUDIO),
    model_case("channel_augment", build_mlee_classifier,
               dict(num_classes=4, feature_dim=40, channel_augment={"seed": 1}, **TINY), EXAMPLES, export=False, **AUDIO),
]


def test_spec_augment_masks_the_encoder_input_in_training_only():
    """`spec_augment` (not in the paper): inference equals the same weights without it; in
    training real bins are masked to 0 and the padding stays 0."""
    import keras

    aug = build_mlee_classifier(4, 40, spec_augment={"freq_mask_param": 10, "time_mask_param": 30, "seed": 1}, **TINY)
    plain = build_mlee_classifier(4, 40, **TINY)
    plain.set_weights(aug.get_weights())
    x = np.zeros((2, 120, 40), "float32")
    x[0] = np.random.default_rng(0).standard_normal((120, 40))
    x[1, :50] = np.random.default_rng(1).standard_normal((50, 40))
    inputs = {"features": x, "num_frames": np.array([120, 50])}
    np.testing.assert_allclose(aug(inputs, training=False)["emotion"], plain(inputs, training=False)["emotion"],
                               atol=1e-6)
    encoder = aug.get_layer("mlee_encoder")
    feats = np.asarray(keras.Model(encoder.inputs, encoder.get_layer("spec_augment").output)(inputs, training=True))
    assert np.mean(feats[0] == 0) > 0.05 and np.all(feats[1, 50:] == 0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_model(case, tmp_path):
    run_case(case, tmp_path)


def test_models_export_and_reload_without_keras_ser(tmp_path):
    check_exports(CASES, tmp_path)


def _cfg(tmp, tiny_corpus, *extra):
    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    return load_config("mlee/synthetic", [
        f"data.root={root}", "data.synthetic_size=tiny", f"data.records_dir={tmp}/records", "data.num_workers=0",
        "train.epochs=1", "train.verbose=0", "protocol.max_folds=1", SMALL, f"output_dir={tmp}/run", *extra])


def test_recipes_follow_the_paper():
    from keras_ser.training.mlee import recipe

    def stages(variant):
        cfg = load_config("mlee/synthetic", [f"task.variant={variant}"])
        return [(s.name, s.kind, s.learning_rate, s.frozen) for s in recipe(cfg)]

    assert stages("hard") == [("dominant", "hard", 5e-4, ())]
    assert stages("mlee_only") == [("mlee", "existence", 2e-4, ())]
    assert stages("pretrain_soft") == [("mlee", "existence", 2e-4, ()), ("finetune", "soft", 1e-4, ("mlee",))]
    assert stages("fusion_hard") == [("dominant", "hard", 5e-4, ()), ("mlee", "existence", 2e-4, ()),
                                     ("fusion", "hard", 5e-5, ("dominant", "mlee"))]


def test_fusion_model_trains_only_its_classifier():
    """Padding and saving: the `fusion` case above."""
    from keras_ser.models.mlee import find_encoders

    kw = dict(conv_blocks=((4, (12, 16), (2, 2)), (4, (8, 12), (1, 1))), lstm_units=8, attention_units=4)
    encoders = [build_mlee_encoder(400, name="dominant_encoder", **kw), build_mlee_encoder(400, name="mlee_encoder", **kw)]
    for e in encoders:
        e.trainable = False
    model = build_mlee_classifier(4, 400, encoder=encoders, return_attention=True)
    assert [e.name for e in find_encoders(model)] == ["dominant_encoder", "mlee_encoder"]
    assert len(model.trainable_weights) == 4  # hidden and output Dense: kernels and biases
    assert model.get_layer("hidden").kernel.shape[0] == 2 * 2 * 8  # two BLSTM(8) utterance vectors
    with pytest.raises(ValueError, match="distinct names"):
        build_mlee_classifier(4, 400, encoder=[encoders[0], encoders[0]])


def test_pretraining_recipe_freezes_the_mlee_encoder_and_exports(tiny_corpus, tmp_path):
    import keras

    from keras_ser.models.mlee import find_encoders
    from keras_ser.training.runner import run

    cfg = _cfg(tmp_path, tiny_corpus, "task.variant=pretrain_soft", "task.train_set=all")
    summary = run(cfg)
    fold = summary["folds"][0]
    fold_dir = os.path.join(cfg.output_dir, "folds", fold["fold"])
    pre = keras.saving.load_model(os.path.join(fold_dir, "mlee", "best.keras"), compile=False)
    final = keras.saving.load_model(os.path.join(fold_dir, "best.keras"), compile=False)
    (enc_pre,), (enc_final,) = find_encoders(pre), find_encoders(final)
    assert enc_final.name == "mlee_encoder" and not enc_final.trainable
    for w0, w1 in zip(enc_pre.weights, enc_final.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(w0), np.asarray(w1), err_msg=w0.path)
    # The MLEE stage used per-class existent / non-existent weights; the soft stage class weights.
    pos, neg = fold["class_weights"]["mlee"]
    assert len(pos) == len(neg) == 4 and len(fold["class_weights"]["finetune"]) == 4
    assert fold["variant"] == "pretrain_soft" and fold["n"] == fold["test_dominant"]
    meta = json.load(open(os.path.join(summary["export"], "keras_ser.json")))
    assert meta["variant"] == "pretrain_soft" and meta["emotion_head"] == "probabilities"
    # the synthetic corpus keeps its simulated annotators' labels: MLEE's dominant label is not
    # always the acted emotion, and the run says on how many utterances
    differs = summary["dominant_differs"]
    assert 0 < differs["count"] < differs["of"] == int(tiny_corpus.manifest["emotion"].isin(summary["labels"]).sum())


def test_dominant_differs_counts_utterances_scored_on_another_label_than_the_corpus_s():
    """The annotators' majority against the corpus's emotion: agreeing, outvoted, tied, a single
    label (no annotations), and an emotion outside the labels (not counted)."""
    import pandas as pd

    from keras_ser.training.mlee import dominant_differs

    man = pd.DataFrame({"emotion": ["angry", "angry", "sad", "sad", "fear"],
                        "annotations": [[["angry"], ["angry"], ["sad"]], [["sad"], ["sad"], ["angry"]],
                                        [["sad"], ["angry"]], None, [["fear"]]]})
    assert dominant_differs(man, ["angry", "sad"]) == {"count": 2, "of": 4}
    assert dominant_differs(man.drop(columns="annotations"), ["angry", "sad"]) == {"count": 0, "of": 4}


def test_existence_model_outputs_independent_probabilities(tiny_corpus, tmp_path):
    import keras

    from keras_ser.training.runner import run

    cfg = _cfg(tmp_path, tiny_corpus, "task.variant=mlee_only", "export.enabled=false")
    summary = run(cfg)
    model = keras.saving.load_model(
        os.path.join(cfg.output_dir, "folds", summary["folds"][0]["fold"], "best.keras"), compile=False)
    x = {"features": np.random.default_rng(1).standard_normal((3, 90, 400)).astype("float32"),
         "num_frames": np.array([90, 60, 30], "int32")}
    p = np.asarray(model(x)["emotion"])
    assert p.shape == (3, 4) and np.all((p > 0) & (p < 1))
    assert not np.allclose(p.sum(-1), 1.0)  # sigmoid, not softmax


def test_pipeline_targets_and_speed_perturbation(tiny_corpus, tmp_path):
    from keras_ser.training.data import fold_list, load_manifest, prepare_records
    from keras_ser.training.mlee import make_datasets, stage_targets

    cfg = _cfg(tmp_path, tiny_corpus, "data.speed_perturb=[0.9, 1.1]", "train.class_weights=false")
    manifest = load_manifest(cfg)
    rs = prepare_records(cfg, manifest)
    fold = fold_list(cfg, manifest)[0]
    targets = stage_targets(cfg, manifest, rs.label_names, "soft")  # soft on "dominant" (the default)
    train, dev, test, _ = make_datasets(rs, fold, cfg, targets)

    def total(ds):
        n, t = 0, 0.0
        for _x, y, _w in ds:
            n += y["emotion"].shape[0]
            t = t + np.asarray(y["emotion"]).sum(0)
        return n, t

    tr = targets.subset(fold.train)
    n, t = total(train)
    assert n == 3 * tr.usable.sum()  # the originals and their 0.9 and 1.1 copies
    np.testing.assert_allclose(t, 3 * tr.targets[tr.usable].sum(0), rtol=1e-5)
    dv = targets.subset(fold.dev)
    n, t = total(dev)
    assert n == dv.usable.sum()  # no perturbed copies outside training
    np.testing.assert_allclose(t, dv.targets[dv.usable].sum(0), rtol=1e-5)
    te = targets.subset(fold.test)
    n, t = total(test)
    assert n == (te.dominant >= 0).sum()
    np.testing.assert_allclose(t, np.bincount(te.dominant[te.dominant >= 0], minlength=4))


def test_all_training_set_includes_utterances_without_a_target_emotion(tiny_corpus, tmp_path):
    """The tiny corpus has a fifth emotion (surprise): "all" trains on it, tests never score it."""
    from keras_ser.training.data import fold_list, load_manifest, prepare_records
    from keras_ser.training.mlee import make_datasets, stage_targets

    cfg = _cfg(tmp_path, tiny_corpus, "task.train_set=all")
    manifest = load_manifest(cfg)
    rs = prepare_records(cfg, manifest)
    fold = fold_list(cfg, manifest)[0]
    emotion = manifest.set_index("utterance_id")["emotion"]
    assert (emotion[fold.train] == "surprise").any()
    existence = stage_targets(cfg, manifest, rs.label_names, "existence")
    train, _, test, _ = make_datasets(rs, fold, cfg, existence)
    assert sum(y["emotion"].shape[0] for _x, y, _w in train) == len(fold.train)
    hard = stage_targets(cfg, manifest, rs.label_names, "hard").subset(fold.test)
    assert sum(y["emotion"].shape[0] for _x, y, _w in test) == (hard.dominant >= 0).sum() < len(fold.test)


def test_table3_experiment_writes_cells_with_their_folds(tmp_path):
    import argparse
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "experiments", "mlee_table3.py")
    spec = importlib.util.spec_from_file_location("mlee_table3", path)
    table3 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table3)
    folds = [{"name": "test-s1", "wa": 0.5, "ua": 0.25, "n": 40, "confusion": [[1]]},
             {"name": "test-s2", "wa": 0.75, "ua": 0.5, "n": 38, "confusion": [[1]]}]
    summary = {"mean": {"wa": {"mean": 0.625, "sd": 0.18, "n": 2}, "ua": {"mean": 0.375, "sd": 0.18, "n": 2}},
               "folds_run": 2, "seconds": 1.0, "folds": folds}
    results = {("hard", "dominant"): summary, ("soft", "all"): summary}
    out = tmp_path / "t3.json"
    args = argparse.Namespace(preset="mlee/synthetic", overrides=["train.epochs=1"], out=str(out))
    base = argparse.Namespace(protocol=argparse.Namespace(name="loso"))
    table3.write_out(args, base, results)
    doc = json.loads(out.read_text())
    assert [(c["variant"], c["train_set"]) for c in doc["cells"]] == [("hard", "dominant"), ("soft", "all")]
    assert doc["cells"][1]["per_fold"] == [{"fold": "test-s1", "wa": 0.5, "ua": 0.25, "n": 40},
                                          {"fold": "test-s2", "wa": 0.75, "ua": 0.5, "n": 38}]
    md = table3.table(results, ["hard", "soft"], ["dominant", "all"])
    assert "| Conventional, hard | 62.5 / 37.5 | n/a |" in md and "| Conventional, soft | n/a | 62.5 / 37.5 |" in md


def test_soft_weighting_sets_the_sample_weights_of_soft_targets(tiny_corpus, tmp_path):
    """task.soft_weighting=argmax weighs each soft-target example by its dominant class, like hard targets."""
    from keras_ser.errors import ConfigError
    from keras_ser.training.data import fold_list, load_manifest, prepare_records
    from keras_ser.training.mlee import make_datasets, stage_targets

    def weights(*extra):
        cfg = _cfg(tmp_path, tiny_corpus, "data.speed_perturb=[]", *extra)
        manifest = load_manifest(cfg)
        rs = prepare_records(cfg, manifest)
        fold = fold_list(cfg, manifest)[0]
        soft = stage_targets(cfg, manifest, rs.label_names, "soft")
        train, _dev, _test, _w = make_datasets(rs, fold, cfg, soft)
        pairs = [(y["emotion"].numpy(), w["emotion"].numpy()) for _x, y, w in train]
        return np.concatenate([p for p, _ in pairs]), np.concatenate([w for _, w in pairs])

    t, by_mass = weights()
    t2, by_argmax = weights("task.soft_weighting=argmax")
    order, order2 = np.lexsort(t.T), np.lexsort(t2.T)  # the training pipeline shuffles
    t, by_mass, t2, by_argmax = t[order], by_mass[order], t2[order2], by_argmax[order2]
    np.testing.assert_allclose(t, t2)
    top = t.argmax(1)
    counts = np.bincount(top, minlength=t.shape[1])
    np.testing.assert_allclose(by_argmax, len(t) / counts[top] / (counts > 0).sum(), rtol=1e-5)
    np.testing.assert_allclose(by_mass, t @ (t.sum() / t.sum(0) / t.shape[1]), rtol=1e-5)
    assert not np.allclose(by_mass, by_argmax)
    with pytest.raises(ConfigError, match="soft_weighting"):
        _cfg(tmp_path, tiny_corpus, "task.soft_weighting=votes")


@pytest.mark.parametrize("variant", ["mlee_only", "fusion_soft"])
def test_existence_and_fusion_models_export_with_named_heads(variant, tmp_path):
    """The two model shapes that the hard/soft export test does not cover: a sigmoid head, and
    two frozen encoders whose attention heads are stacked. Served outputs equal the Keras model's."""
    import tensorflow as tf

    from keras_ser.models.mlee import build_mlee_classifier, build_mlee_encoder
    from keras_ser.serving.export import export_model

    kw = dict(conv_blocks=((4, (12, 16), (2, 2)), (4, (8, 12), (1, 1))), lstm_units=8, attention_units=4)
    if variant == "mlee_only":
        model = build_mlee_classifier(4, 400, activation="sigmoid", return_attention=True, **kw)
    else:
        encoders = [build_mlee_encoder(400, name=n, **kw) for n in ("dominant_encoder", "mlee_encoder")]
        model = build_mlee_classifier(4, 400, encoder=encoders, return_attention=True)
    path = export_model(model, str(tmp_path / "export"), frontend="mlee", label_names=["n", "h", "s", "a"])
    served = tf.saved_model.load(path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 80, 400)).astype("float32")
    n = np.array([80, 50], "int32")
    got = served.signatures["features"](features=tf.constant(x), num_frames=tf.constant(n))
    want = model({"features": x, "num_frames": n})
    assert sorted(got) == ["attention", "emotion", "status"] and got["status"].numpy().tolist() == [0, 0]
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), np.asarray(want[k]), atol=1e-5, err_msg=k)
    p = got["emotion"].numpy()
    heads = got["attention"].shape[1]
    if variant == "mlee_only":
        assert heads == 1 and not np.allclose(p.sum(-1), 1.0)
    else:
        assert heads == 2 and np.allclose(p.sum(-1), 1.0, atol=1e-5)
    wave = rng.standard_normal((1, 16000)).astype("float32") * 0.1
    out = served.signatures["serving_default"](waveform=tf.constant(wave), num_samples=tf.constant([16000]))
    assert out["emotion"].shape == (1, 4) and int(out["num_frames"][0]) > 0
