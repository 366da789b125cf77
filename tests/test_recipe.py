"""The training recipe beyond the papers: cosine schedule, last-epoch and averaged weights,
AdamW, mixup and silence trimming (its NumPy and TensorFlow forms agree)."""

import os

import numpy as np
import pytest

from keras_ser.config import load_config
from keras_ser.errors import ConfigError

SMALL = ("model.params={conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], "
         "lstm_units: 8, attention_units: 8}")


def _cfg(tmp, tiny_corpus, *extra):
    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    return load_config("mlee/synthetic", [
        f"data.root={root}", "data.synthetic_size=tiny", f"data.records_dir={tmp}/records", "data.num_workers=0",
        "train.verbose=0", "protocol.max_folds=1", SMALL, "export.enabled=false", f"output_dir={tmp}/run", *extra])


def test_the_cosine_schedule_warms_up_and_decays_to_zero():
    from keras_ser.training.loop import CosineSchedule

    s = CosineSchedule(1e-3, epochs=10, warmup=2)
    rates = [s.rate(e) for e in range(10)]
    assert rates[0] == pytest.approx(1e-3 / 3) and rates[1] == pytest.approx(2e-3 / 3) and rates[2] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(rates[2:], rates[3:])) and rates[-1] < 0.05e-3


def test_last_and_averaged_weights_are_kept_whatever_the_dev_loss(tiny_corpus, tmp_path):
    """select=last keeps the last epoch (no early stopping, nothing chosen on dev); select=average
    keeps the mean of the last epochs' weights; the learning rate follows the cosine."""
    import csv

    from keras_ser.training.loop import average_weights, load_model
    from keras_ser.training.runner import run

    cfg = _cfg(tmp_path, tiny_corpus, "train.epochs=4", "train.patience=1", "train.select=average",
               "train.average_epochs=2", "train.schedule=cosine", "train.optimizer=adamw", "train.weight_decay=0.01",
               "train.mixup=0.4")
    summary = run(cfg)
    stage = os.path.join(cfg.output_dir, "folds", summary["folds"][0]["fold"], "dominant")
    rows = list(csv.DictReader(open(os.path.join(stage, "history.csv"))))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # patience 1 stops nothing
    lrs = [float(r["learning_rate"]) for r in rows]
    assert lrs[0] == pytest.approx(5e-4) and lrs[-1] < lrs[1] < lrs[0]
    kept = load_model(os.path.join(stage, "best.keras")).get_weights()
    want = average_weights([os.path.join(stage, "average", f"epoch{e}.npz") for e in (2, 3)])
    for a, b in zip(kept, want):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert not os.path.exists(os.path.join(stage, "average", "epoch1.npz"))


def test_recipe_config_errors():
    with pytest.raises(ConfigError, match="train.mixup: not for fg_cme fg_cme"):
        load_config("fg_cme/synthetic", ["train.mixup=0.2"])
    with pytest.raises(ConfigError, match="train.select: 'final' is not one of"):
        load_config("mlee/synthetic", ["train.select=final"])
    with pytest.raises(ConfigError, match="train.average_epochs: 9 is more than train.epochs=6"):
        load_config("mlee/synthetic", ["train.select=average", "train.average_epochs=9"])


def test_mixup_mixes_features_targets_and_keeps_the_longer_length():
    import tensorflow as tf

    from keras_ser.training.data import mix_batches

    x = {"features": tf.constant(np.arange(2 * 3 * 2, dtype="float32").reshape(2, 3, 2)),
         "num_frames": tf.constant([3, 1])}
    y = {"emotion": tf.constant([[1.0, 0.0], [0.0, 1.0]])}
    sw = {"emotion": tf.constant([1.0, 2.0])}
    tf.random.set_seed(3)
    for (mx, my, _) in mix_batches(tf.data.Dataset.from_tensors((x, y, sw)), 0.4).repeat(8):
        t = np.asarray(my["emotion"])
        np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)
        lam = t[0, 0] if np.asarray(mx["num_frames"]).tolist() == [3, 3] else None
        if lam is not None and 0 < lam < 1:  # the two examples mixed with each other
            np.testing.assert_allclose(np.asarray(mx["features"])[0], lam * x["features"][0] + (1 - lam) * x["features"][1],
                                       atol=1e-5)
    with pytest.raises(Exception, match="cannot be mixed"):
        words = dict(x, word_ids=tf.constant([[1], [2]]))
        next(iter(mix_batches(tf.data.Dataset.from_tensors((words, y, sw)), 0.4)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_silence_trimming_agrees_in_numpy_and_tensorflow(seed):
    import tensorflow as tf

    from keras_ser.audio.trim import trim_bounds, trim_bounds_tf

    rng = np.random.default_rng(seed)
    wavs = []
    for n, lead, tail in ((16000, 3000, 4000), (9000, 0, 2500), (300, 0, 0), (12000, 5000, 0)):
        w = rng.standard_normal(n) * 1e-4  # room noise, 80 dB down
        w[lead: n - tail] += rng.standard_normal(n - lead - tail) * 0.3  # speech
        wavs.append(w.astype("float32"))
    batch = np.zeros((len(wavs), max(map(len, wavs))), "float32")
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = w
    start, end = trim_bounds_tf(tf.constant(batch), tf.constant([len(w) for w in wavs]), 30.0)
    for i, w in enumerate(wavs):
        assert (int(start[i]), int(end[i])) == trim_bounds(w, 30.0)
    s, e = trim_bounds(wavs[0], 30.0)
    assert abs(s - 3000) <= 400 and abs(e - 12000) <= 400  # within a frame of the speech
    assert trim_bounds(wavs[2], 30.0) == (0, 300)  # shorter than a frame: kept whole


def test_trimmed_records_move_the_words_with_the_audio(tmp_path):
    """data.trim_silence drops the leading silence: FG_CME's words, given against the audio file,
    move back by what was trimmed, in training and in the export."""
    import soundfile as sf

    from keras_ser.corpora import synthetic
    from keras_ser.corpora.manifest import save_manifest
    from keras_ser.text import Vocabulary
    from keras_ser.training import data, fg_cme

    corpus = synthetic.generate(str(tmp_path / "corpus"), size="tiny", seed=0)
    man = corpus.manifest.copy()
    rows = []
    for row in man.itertuples():  # one second of room noise before each utterance
        wav, sr = sf.read(row.path, dtype="float32")
        padded = np.concatenate([np.random.default_rng(0).standard_normal(sr) * 1e-4, wav]).astype("float32")
        path = str(tmp_path / f"{row.utterance_id}.wav")
        sf.write(path, padded, sr)
        rows.append(dict(path=path, words=[(w, s + 1.0, e + 1.0) for w, s, e in row.words]))
    for col in ("path", "words"):
        man[col] = [r[col] for r in rows]
    man["duration"] = man["duration"] + 1.0
    save_manifest(man, str(tmp_path / "padded.jsonl"))
    cfg = load_config("fg_cme/synthetic", [
        "data.corpus=manifest", f"data.root={tmp_path / 'padded.jsonl'}", "data.trim_silence=30", "data.num_workers=0",
        f"data.records_dir={tmp_path}/records", "train.verbose=0", "train.batch_size=64"])
    rs, manifest, labels_of, alignments, _ = fg_cme.prepare(cfg)
    trimmed = rs.manifest.set_index("utterance_id")["trim_start"]
    assert trimmed.between(1.0, 1.5).all()  # the second of noise and the start of the quiet onset
    ids = manifest["utterance_id"].tolist()
    vocab = Vocabulary.build([[w for w, _, _ in alignments[u]] for u in ids])
    x, _, _ = next(iter(fg_cme.dataset(rs, cfg, ids, labels_of, alignments, vocab, ["word_starts", "num_words"],
                                       positions=True)))
    first = {u: s for u, s in zip(ids, [alignments[u][0][1] for u in ids])}
    got = np.asarray(x["word_starts"])[:, 0]
    assert np.all(got < 1.0) and np.all(got >= 0)  # back in the trimmed audio's time
    assert data.records_dir(cfg, manifest) != data.records_dir(load_config("fg_cme/synthetic"), manifest)
    assert min(first.values()) >= 1.0


@pytest.fixture(scope="module")
def search_setup(tiny_corpus, tmp_path_factory):
    """recipe_search imported, the overrides every tiny candidate shares, and a reference run's
    2-fold folds.json (4 speakers: test, development and two training speakers a fold), shared
    by the tests of this module (each searches into its own folders)."""
    return _search_setup(tiny_corpus, tmp_path_factory.mktemp("search"))


def _search_setup(tiny_corpus, tmp_path):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments"))
    import recipe_search

    from keras_ser.training.runner import run

    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    common = [f"data.root={root}", "data.synthetic_size=tiny", f"data.records_dir={tmp_path}/records",
              "data.num_workers=0", "train.epochs=1", "model.name=cnn_pool", "train.select=last",
              "model.params={conv_filters: [4, 4, 4], conv_kernels: [3, 3, 3], hidden_units: 8}",
              "export.enabled=false", "protocol.k=4", "protocol.min_fold_utterances=2", "protocol.max_folds=null"]
    run(load_config("fg_cme/synthetic", [*common, f"output_dir={tmp_path}/ref", "protocol.max_folds=2"]))
    return recipe_search, common, str(tmp_path / "ref" / "folds.json")


def test_a_recipe_is_chosen_on_the_development_speakers_never_on_the_test_folds(search_setup, tmp_path):
    """experiments/recipe_search.py: candidates trained on each fold's training speakers and
    scored on its development speakers; the chosen one then run on the real folds."""
    import json

    from keras_ser.training.runner import run

    recipe_search, common, folds_file = search_setup
    out = str(tmp_path / "search.json")
    recipe_search.main(["--base", "fg_cme/synthetic", "--folds-file", folds_file, "--runs", str(tmp_path / "search"),
                        "--out", out, "--seeds", "0", "--candidate", "base=", "--candidate", "slow=train.learning_rate=1e-6",
                        "--extra", *common])
    doc = json.load(open(out))
    picked = doc["candidates"][doc["chosen"]]["dev_ua"]["mean"]
    assert all(picked >= c["dev_ua"]["mean"] for c in doc["candidates"].values())
    slow = json.load(open(tmp_path / "search" / "selection.json"))["rows"]["slow"]["overrides"]
    assert slow[-2:] == ["train.learning_rate=1e-6", "protocol.min_fold_utterances=1"]  # after --extra: it wins
    sel = json.load(open(doc["selection_folds"]))["folds"]
    real = json.load(open(folds_file))["folds"]
    assert [f["test"] for f in sel] == [f["dev"] for f in real] and all(not f["dev"] for f in sel)
    assert doc["assessment"]["folds"] == 2 and doc["assessment"]["seeds"] == [0]
    # Another selection number, the selection alone (the finished selection runs are reused).
    args = ["--base", "fg_cme/synthetic", "--folds-file", folds_file, "--runs", str(tmp_path / "search"), "--seeds", "0",
            "--candidate", "base=", "--candidate", "slow=train.learning_rate=1e-6", "--select-only", "--extra", *common]
    recipe_search.main([*args[:-len(common) - 1], "--out", str(tmp_path / "only.json"), "--select-metric", "wa",
                        *args[-len(common) - 1:]])
    only = json.load(open(tmp_path / "only.json"))
    assert only["assessment"] is None and only["select_metric"] == "wa" and "wa" in only["criterion"]
    assert all(only["candidates"][only["chosen"]]["dev_wa"]["mean"] >= c["dev_wa"]["mean"]
               for c in only["candidates"].values())
    with pytest.raises(SystemExit, match="--candidate wide: override '1,' is not key=value"):  # unquoted spaces
        recipe_search.main(["--base", "fg_cme/synthetic", "--folds-file", folds_file, "--runs", str(tmp_path / "x"),
                            "--out", str(tmp_path / "x.json"), "--candidate", "wide=model.params={a: 1, b: 2}",
                            "--extra", *common])
    with pytest.raises(SystemExit):  # no assessed row to put in a table
        recipe_search.main([*args[:-len(common) - 1], "--out", str(tmp_path / "x.json"), "--table",
                            str(tmp_path / "t.json"), *args[-len(common) - 1:]])
    with pytest.raises(SystemExit, match="--select-metric intensity_auc: not in the selection rows"):
        recipe_search.main([*args[:-len(common) - 1], "--out", str(tmp_path / "x.json"), "--select-metric",
                            "intensity_auc", *args[-len(common) - 1:]])
    with pytest.raises(ConfigError, match="train.select=best chooses the epoch on development utterances"):
        run(load_config("fg_cme/synthetic", [*common[:-3], "train.select=best", f"protocol.folds_file={doc['selection_folds']}",
                                             "protocol.min_fold_utterances=2", f"output_dir={tmp_path}/best"]))


def test_a_recipe_chosen_on_inner_folds_of_the_training_speakers(search_setup, tiny_corpus, tmp_path):
    """recipe_search --select-by inner: candidates scored on inner folds of whole training and
    development speakers of each outer fold, never on an outer test utterance."""
    import json

    recipe_search, common, folds_file = search_setup
    out = str(tmp_path / "search.json")
    table = str(tmp_path / "table.json")
    with open(table, "w") as f:  # a table of these folds with a row already in it
        json.dump({"folds_file": folds_file, "rows": {"reference": {"seeds": [0], "wa": {"mean": 0.5}}}, "seeds": [0]}, f)
    recipe_search.main(["--base", "fg_cme/synthetic", "--folds-file", folds_file, "--runs", str(tmp_path / "search"),
                        "--out", out, "--seeds", "0", "--select-by", "inner", "--inner-folds", "2", "--select-outer", "1",
                        "--table", table, "--table-row", "cnn_recipe",
                        "--candidate", "base=", "--candidate", "slow=train.learning_rate=1e-6", "--extra", *common])
    doc = json.load(open(out))
    assert doc["select_by"] == "inner" and doc["inner_folds"] == 2
    picked = doc["candidates"][doc["chosen"]]["dev_ua"]["mean"]
    assert all(picked >= c["dev_ua"]["mean"] for c in doc["candidates"].values())
    outer = json.load(open(folds_file))["folds"][0]
    inner = json.load(open(doc["selection_folds"]))["folds"]
    assert len(inner) == 2 and all(not f["dev"] for f in inner)
    speaker = tiny_corpus.manifest.set_index("utterance_id")["speaker"]
    pool = set(outer["train"]) | set(outer["dev"])
    assert set().union(*(f["test"] for f in inner)) == pool  # every training utterance tested once
    for f in inner:
        assert not set(f["test"]) & set(outer["test"]) and not set(f["train"]) & set(f["test"])
        assert set(f["train"]) | set(f["test"]) == pool
        assert not set(speaker[f["test"]]) & set(speaker[f["train"]])  # whole speakers
    selection = json.load(open(str(tmp_path / "search" / "selection.json")))["rows"]
    assert selection["base"]["folds"] == 2  # scored on the two inner folds
    assert doc["assessment"]["folds"] == 2  # then on the real folds
    rows = json.load(open(table))["rows"]  # the assessed row beside the table's own, the choice recorded
    assert set(rows) == {"reference", "cnn_recipe"} and rows["cnn_recipe"]["wa"] == doc["assessment"]["wa"]
    assert rows["cnn_recipe"]["selected_by"]["candidate"] == doc["chosen"]
    with pytest.raises(SystemExit):  # a table of other folds is refused before anything runs
        with open(table, "w") as f:
            json.dump({"folds_file": str(tmp_path / "other.json"), "rows": {}}, f)
        recipe_search.main(["--base", "fg_cme/synthetic", "--folds-file", folds_file, "--runs", str(tmp_path / "x"),
                            "--out", out, "--table", table, "--candidate", "base=", "--extra", *common])
    assert not os.path.exists(tmp_path / "x")
    with pytest.raises(SystemExit, match="3 speaker groups for training, fewer than --inner-folds 4"):
        recipe_search.inner_folds(folds_file, tiny_corpus.manifest, 4, str(tmp_path / "x.json"))


def test_the_export_trims_served_audio_as_the_records_were(tmp_path):
    """data.trim_silence: served audio is trimmed in the graph exactly as the writer trimmed the
    training audio (NumPy), and a click in silence is too short once trimmed (status 3)."""
    import tensorflow as tf

    from keras_ser.audio import compute_features
    from keras_ser.audio.trim import trim
    from keras_ser.models.mlee import build_mlee_classifier
    from keras_ser.serving.export import export_model

    model = build_mlee_classifier(4, 400, conv_blocks=((4, (12, 16), (2, 2)),), lstm_units=4, attention_units=4)
    path = export_model(model, str(tmp_path / "export"), frontend="mlee", label_names=list("abcd"), trim_db=30)
    rng = np.random.default_rng(0)
    speech = np.concatenate([rng.standard_normal(16000) * 1e-4, rng.standard_normal(12000) * 0.3,
                             rng.standard_normal(8000) * 1e-4]).astype("float32")
    click = (rng.standard_normal(16000) * 1e-4).astype("float32")
    click[8000:8100] = 0.5
    batch = np.zeros((2, len(speech)), "float32")
    batch[0], batch[1, : len(click)] = speech, click
    out = tf.saved_model.load(path).signatures["serving_default"](
        waveform=tf.constant(batch), num_samples=tf.constant([len(speech), len(click)], tf.int32))
    assert out["status"].numpy().tolist() == [0, 3] and np.isnan(out["emotion"].numpy()[1]).all()
    trimmed = trim(speech, 30)
    assert 11000 < len(trimmed) < 13500
    feats, n = compute_features(trimmed[None], None, "mlee")
    want = np.asarray(model({"features": feats, "num_frames": n})["emotion"])[0]
    np.testing.assert_allclose(out["emotion"].numpy()[0], want, atol=1e-5)
    assert int(out["num_frames"].numpy()[0]) == int(n[0])


def test_learning_curve_folds_keep_the_test_parts_and_nest_the_training_speakers():
    """experiments/learning_curve.py: each fraction trains on whole speakers of the fold's
    training and development parts, nested over fractions; test parts untouched, no dev part."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments"))
    import learning_curve

    speaker_of = {f"s{s}_u{u}": f"s{s}" for s in range(10) for u in range(3)}
    folds = [{"name": f"fold{k}", "train": [f"s{s}_u{u}" for s in range(10) if s not in (k, k + 1) for u in range(3)][3:],
              "dev": [f"s{(k + 2) % 10}_u{u}" for u in range(3)], "test": [f"s{s}_u{u}" for s in (k, k + 1) for u in range(3)],
              "dev_from_train": False} for k in range(2)]
    doc = {"protocol": "kfold", "folds": folds}
    parts = {f: learning_curve.fraction_folds(doc, speaker_of, f)["folds"] for f in (0.25, 0.5, 1.0)}
    for k, fold in enumerate(folds):
        pool = set(fold["train"]) | set(fold["dev"])
        speakers = {f: {speaker_of[u] for u in parts[f][k]["train"]} for f in parts}
        assert all(p[k]["test"] == fold["test"] and p[k]["dev"] == [] for p in parts.values())
        assert set(parts[1.0][k]["train"]) == pool  # everything at f = 1
        assert len(speakers[0.25]) == 2 and len(speakers[0.5]) == 4 and speakers[0.25] <= speakers[0.5] <= speakers[1.0]
        kept = {u for u in pool if speaker_of[u] in speakers[0.5]}
        assert set(parts[0.5][k]["train"]) == kept  # whole speakers, every utterance of theirs
