"""data.normalization for the frontends: per speaker and per utterance in the pipeline, the
same in the export, and keras_ser-predict supplying a speaker's statistics."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_ser.config import load_config

SMALL = ("model.params={conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], "
         "lstm_units: 8, attention_units: 8}")


def _cfg(tmp, tiny_corpus, norm, *extra):
    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    return load_config("mlee/synthetic", [
        f"data.root={root}", "data.synthetic_size=tiny", f"data.records_dir={tmp}/records", "data.num_workers=0",
        "train.epochs=1", "train.verbose=0", "protocol.max_folds=1", SMALL, f"data.normalization={norm}",
        f"output_dir={tmp}/run-{norm}", *extra])


@pytest.mark.parametrize("norm", ["speaker", "utterance"])
def test_the_pipeline_normalises_as_asked(norm, tiny_corpus, tmp_path):
    from keras_ser.training import data

    cfg = _cfg(tmp_path, tiny_corpus, norm)
    d = data.load(cfg)
    rs = d.records
    speaker = sorted(d.manifest["speaker"].unique())[0]
    ids = d.manifest.loc[d.manifest["speaker"] == speaker, "utterance_id"].tolist()
    frames = []
    for x, _, _ in data.classification_dataset(rs, cfg, ids, np.zeros((len(ids), 4), "float32")):
        f, n = np.asarray(x["features"]), np.asarray(x["num_frames"])
        frames += [f[i, : n[i]] for i in range(len(n))]
        assert all(np.all(f[i, n[i]:] == 0) for i in range(len(n)))  # padding stays 0
    if norm == "speaker":  # over all of the speaker's frames: mean 0, sd 1
        allf = np.concatenate(frames)
        assert np.abs(allf.mean(0)).max() < 1e-3 and np.abs(allf.std(0) - 1).max() < 1e-2
    else:  # each utterance on its own
        assert all(np.abs(f.mean(0)).max() < 1e-3 for f in frames)
    stats = data.training_stats(rs, cfg, ids)
    assert np.all(stats.mean == 0) and np.allclose(stats.std(), 1)  # the model adds nothing


@pytest.mark.parametrize("norm", ["speaker", "utterance"])
def test_the_export_normalises_as_the_pipeline_did(norm, tiny_corpus, tmp_path):
    """A run trained with per-speaker (per-utterance) normalisation exports a graph that does
    the same: served outputs equal the model on the pipeline's normalised features."""
    import tensorflow as tf

    from keras_ser.audio import compute_features, load_audio
    from keras_ser.audio.normalization import FeatureStats
    from keras_ser.training import data
    from keras_ser.training.loop import load_model
    from keras_ser.training.runner import run

    cfg = _cfg(tmp_path, tiny_corpus, norm)
    summary = run(cfg)
    meta = json.load(open(os.path.join(summary["export"], "keras_ser.json")))
    assert meta["normalization"] == norm
    assert ("speaker_mean" in meta["signatures"]["serving_default"]) == (norm == "speaker")
    model = load_model(os.path.join(cfg.output_dir, "folds", summary["folds"][0]["fold"], "best.keras"))
    d = data.load(cfg)
    speaker = summary["folds"][0]["fold"].removeprefix("test-")
    paths = d.manifest.loc[d.manifest["speaker"] == speaker, "path"].tolist()[:3]
    wavs = [load_audio(p) for p in paths]
    stats = FeatureStats.zeros(400)
    feats = []
    for w in wavs:
        f, n = compute_features(w[None], None, "mlee")
        feats.append(f.numpy()[0, : int(n[0])])
    if norm == "speaker":  # the records' speaker statistics: every utterance of the speaker
        stats = data.speaker_statistics(d.records)[speaker]
        mean, sd = stats.mean.astype("float32"), stats.std(1e-3).astype("float32")
        normed = [(f - mean) / sd for f in feats]
    else:
        normed = [(f - f.mean(0)) / np.sqrt(np.maximum(f.var(0), 1e-6)) for f in feats]
    fn = tf.saved_model.load(summary["export"]).signatures["serving_default"]
    for w, x in zip(wavs, normed):
        inputs = {"waveform": tf.constant(w[None]), "num_samples": tf.constant([len(w)], tf.int32)}
        if norm == "speaker":
            inputs.update(speaker_mean=tf.constant(mean[None]), speaker_std=tf.constant(sd[None]))
        got = fn(**inputs)["emotion"].numpy()[0]
        want = np.asarray(model({"features": x[None], "num_frames": np.array([len(x)])})["emotion"])[0]
        np.testing.assert_allclose(got, want, atol=1e-4)
    if norm == "speaker":  # keras_ser-predict computes the statistics from the files it is given
        out = subprocess.run([sys.executable, "-m", "keras_ser.cli.predict", summary["export"], *paths, "--json"],
                             capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert out.returncode == 0, out.stderr[-2000:]
        assert "statistics from the 3 files given" in out.stderr
        assert len([json.loads(line) for line in out.stdout.strip().splitlines()]) == 3
