import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_ser.audio import features_numpy, load_audio
from keras_ser.errors import RecordError
from tfrecords_tools import RecordSet, write_records
from tfrecords_tools import writer as writer_module


def test_round_trip_gives_identical_features(tiny_corpus, tiny_records):
    rs = tiny_records
    m = tiny_corpus.manifest.set_index("utterance_id")
    seen = 0
    for batch in rs.dataset(rs.files(), batch_size=7, bucket=True):
        for i, uid in enumerate(batch["utterance_id"].numpy()):
            uid = uid.decode()
            n = int(batch["num_frames"][i])
            expected = features_numpy(load_audio(m.loc[uid, "path"]), "epr")
            np.testing.assert_allclose(batch["features"][i, :n].numpy(), expected, rtol=1e-6, atol=1e-6)
            assert np.all(batch["features"][i, n:].numpy() == 0)
            assert rs.label_names[int(batch["label"][i])] == m.loc[uid, "emotion"]
            words = [w.decode() for w in batch["words"][i, : int(batch["num_words"][i])].numpy()]
            assert words == m.loc[uid, "text"].split()
            seen += 1
    assert seen == len(m)


def test_shards_are_per_speaker_and_stats_match(tiny_corpus, tiny_records):
    rs = tiny_records
    assert rs.keys == sorted(tiny_corpus.manifest["speaker"].unique())
    files = rs.files(keys=rs.keys[:2])
    speakers = set()
    frames = []
    for batch in rs.dataset(files, batch_size=16, bucket=False):
        speakers |= {s.decode() for s in batch["speaker"].numpy()}
        for i in range(len(batch["num_frames"])):
            frames.append(batch["features"][i, : int(batch["num_frames"][i])].numpy())
    assert speakers == set(rs.keys[:2])
    stats = rs.feature_stats(files)
    whole = np.concatenate(frames)
    np.testing.assert_allclose(stats.mean, whole.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats.std(), whole.std(0), rtol=1e-3, atol=1e-4)


def test_annotation_counts_and_segments(tiny_corpus, tiny_records):
    rs = tiny_records
    m = tiny_corpus.manifest.set_index("utterance_id")
    batch = next(iter(rs.dataset(rs.files(), batch_size=80, bucket=False)))
    for i, uid in enumerate(batch["utterance_id"].numpy()[:20]):
        row = m.loc[uid.decode()]
        counts = batch["annotation_counts"][i].numpy()
        expect = [sum(lab in set(a) for a in row["annotations"]) for lab in rs.label_names]
        assert counts.tolist() == expect
        assert int(batch["num_annotators"][i]) == 3
        np.testing.assert_allclose(float(batch["strength"][i]), row["strength"], atol=1e-6)


def test_speed_perturbed_shards_are_separate(tiny_corpus, tmp_path):
    m = tiny_corpus.manifest
    m = m[m["speaker"].isin(["synth_s01", "synth_s02"])].iloc[::4]
    rs = write_records(m, str(tmp_path / "sp"), frontend="fg_cme", speed_factors=(0.9, 1.1),
                       include_waveform=True, progress=False)
    plain = rs.files()
    both = rs.files(with_perturbed=True)
    assert len(plain) == 2 and len(both) == 6
    ids = [u.decode() for b in rs.dataset(both, 32, bucket=False) for u in b["utterance_id"].numpy()]
    assert sum(u.endswith("_sp0.9") for u in ids) == len(m) and len(ids) == 3 * len(m)
    b = next(iter(rs.dataset(rs.files(keys=["synth_s01"], with_perturbed=True), 64, bucket=False,
                             with_waveform=True)))
    n = b["num_samples"].numpy()
    assert len(set(n)) == len(n)  # three speeds, three lengths per utterance


def test_interrupted_write_leaves_no_valid_dataset(tiny_corpus, tmp_path, monkeypatch):
    out = str(tmp_path / "broken")
    m = tiny_corpus.manifest.iloc[::4]
    calls = {"n": 0}
    real = writer_module.make_example

    def crash_mid_shard(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # inside the second speaker's shard
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_module, "make_example", crash_mid_shard)
    with pytest.raises(KeyboardInterrupt):
        write_records(m, out, frontend="epr", progress=False)
    assert not os.path.exists(os.path.join(out, "dataset.json"))
    assert not any(".tmp-" in f for f in os.listdir(os.path.join(out, "shards")))
    with pytest.raises(RecordError, match="did not finish"):
        RecordSet(out)
    monkeypatch.setattr(writer_module, "make_example", real)
    rs = write_records(m, out, frontend="epr", progress=False)
    assert rs.meta["num_examples"] == 20


def test_unreadable_audio_is_reported_not_dropped(tiny_corpus, tmp_path):
    m = tiny_corpus.manifest.iloc[:3].copy()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    m.loc[m.index[1], "path"] = str(bad)
    rs = write_records(m, str(tmp_path / "r"), frontend="epr", progress=False)
    assert rs.meta["num_examples"] == 2 and rs.meta["num_skipped"] == 1
    skipped = open(tmp_path / "r" / "skipped.csv").read()
    assert "bad.wav" in skipped and "cannot decode" in skipped


def test_missing_shard_is_a_clear_error(tiny_records, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_records.root, copy)
    meta = json.load(open(copy / "dataset.json"))
    os.remove(copy / "shards" / meta["shards"][0]["file"])
    with pytest.raises(RecordError, match="missing"):
        RecordSet(str(copy))


def test_bucketing_pads_less_than_plain_batches(tiny_records):
    from tfrecords_tools import padded_fraction

    rs = tiny_records
    plain = padded_fraction(rs.dataset(rs.files(), 8, shuffle=True, bucket=False))
    bucketed = padded_fraction(rs.dataset(rs.files(), 8, shuffle=True, bucket=True, num_buckets=6))
    assert bucketed < plain


def test_inspect_command(tiny_records):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", "tfrecords_tools.inspect", tiny_records.root],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "80 examples in 4 shards, 4 speakers" in out.stdout
    assert "neutral" in out.stdout and "dim 64" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "tfrecords_tools.inspect", "/nonexistent"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "/nonexistent" in bad.stderr and "Traceback" not in bad.stderr


def test_opensmile_runs_in_tensorflow_free_workers(tiny_corpus, tmp_path):
    import tensorflow  # noqa: F401  (TF is loaded here; the workers must still be clean)

    from tfrecords_tools.opensmile_features import (
        ExtractionError,
        extract_functionals,
        workers_import_tensorflow,
    )

    assert workers_import_tensorflow() is False
    paths = list(tiny_corpus.manifest["path"].iloc[:3]) + [str(tmp_path / "missing.wav")]
    feats, names, errors = extract_functionals(paths, num_workers=2, cache_path=str(tmp_path / "c.npz"))
    assert feats.shape == (4, 384) and len(names) == 384
    assert np.isfinite(feats[:3]).all() and np.isnan(feats[3]).all()
    assert list(errors) == [paths[3]] and "does not exist" in errors[paths[3]]
    again, _, _ = extract_functionals(paths, cache_path=str(tmp_path / "c.npz"))
    np.testing.assert_array_equal(again, feats)
    # No file gives functionals: one error that names the first file, every file's reason kept.
    (tmp_path / "notes.wav").write_text("not audio")
    bad = [str(tmp_path / "notes.wav"), paths[3]]
    with pytest.raises(ExtractionError, match=r"any of 2 files \(first: .*notes.wav: cannot decode audio") as exc:
        extract_functionals(bad, num_workers=1)
    assert list(exc.value.errors) == bad and "does not exist" in exc.value.errors[paths[3]]


def test_undefined_functionals_fail_a_file_or_become_zero_from_one_extraction():
    """The cache holds openSMILE's values as given: `non_finite` is applied after it, so the
    reference (zeros) and StrengthNet's ranking labels (a failure) read one extraction."""
    from tfrecords_tools.opensmile_features import ExtractionError, handle_non_finite

    raw = np.array([[1.0, 2.0], [np.nan, 3.0], [np.nan, np.nan], [np.inf, 4.0]])
    paths, errors = ["a.wav", "b.wav", "c.wav", "d.wav"], {"c.wav": "cannot decode audio"}
    zero, names, err = handle_non_finite(raw, ["f0", "f1"], errors, paths, "zero")
    np.testing.assert_array_equal(zero[[0, 1, 3]], [[1, 2], [0, 3], [0, 4]])
    assert np.isnan(zero[2]).all() and err == errors and names == ["f0", "f1"]
    fail, _, err = handle_non_finite(raw, ["f0", "f1"], errors, paths, "error")
    np.testing.assert_array_equal(fail[0], [1, 2])
    assert np.isnan(fail[1:]).all() and np.isnan(raw[1, 0]) and raw[1, 1] == 3.0  # the cached values untouched
    assert err == {"b.wav": "openSMILE returned non-finite functionals", "c.wav": "cannot decode audio",
                   "d.wav": "openSMILE returned non-finite functionals"}
    with pytest.raises(ExtractionError, match=r"any of 2 files \(first: b.wav: openSMILE returned non-finite"):
        handle_non_finite(raw[1:3], ["f0", "f1"], errors, paths[1:3], "error")


def test_a_user_script_that_imports_tensorflow_can_extract_functionals(tiny_corpus, tmp_path):
    """Spawn re-runs the parent's main file in each worker: a script whose imports load
    TensorFlow (any `from keras_ser.training ...`) loaded it into the openSMILE workers, which
    refused. `spawn_pool` keeps the main module out of them."""
    script = tmp_path / "user.py"
    script.write_text(
        "import sys\n"
        "import tensorflow  # noqa: F401\n"
        "from tfrecords_tools.opensmile_features import extract_functionals\n"
        "if __name__ == '__main__':\n"
        "    X, names, errors = extract_functionals(sys.argv[1:], 'eGeMAPSv02', num_workers=2)\n"
        "    print('shape', X.shape, 'errors', len(errors))\n")
    paths = list(tiny_corpus.manifest["path"].iloc[:2])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, str(script), *paths], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "shape (2, 88) errors 0" in out.stdout


def test_pipelines_run_without_the_autotuner_unless_asked(tiny_records):
    """tf.data's autotuner is off by default (`data.autotune`): with it, Keras's destruction of
    each epoch's finished iterator waited for the autotuner's thread (docs/benchmarks.md). The
    option reaches the end of every pipeline built on the reader: the shared data module's batches and the
    EPR segments."""
    from keras_ser.config import load_config
    from keras_ser.training import epr
    from keras_ser.training.data import make_dataset

    rs = tiny_records
    ids = rs.manifest["utterance_id"].tolist()
    assert rs.dataset(rs.files(), 4).options().autotune.enabled is False
    assert rs.dataset(rs.files(), None, autotune=True).options().autotune.enabled is True
    for autotune in (False, True):
        cfg = load_config("epr/synthetic", [f"data.autotune={str(autotune).lower()}"])
        batches = make_dataset(rs, cfg, ids, {"w": np.ones(len(ids))}, lambda b, rows: (b["features"], rows["w"]))
        assert batches.options().autotune.enabled is autotune
        table = epr.make_table(cfg, rs, ids, dict.fromkeys(ids, 0), None, None, len(rs.label_names))
        assert epr.segment_dataset(rs, cfg, table).options().autotune.enabled is autotune
        assert len(next(iter(batches))[0].shape) == 3


def test_a_run_writes_small_datasets_in_its_own_process(tiny_corpus, monkeypatch, tmp_path):
    """Starting worker processes (each imports TensorFlow) costs more than it saves below half an
    hour of audio (docs/benchmarks.md): a run writes such records itself, larger ones with
    data.num_workers processes (speed-perturbed copies count)."""
    from keras_ser.config import load_config
    from keras_ser.training import data

    seen = []
    monkeypatch.setattr(data, "write_records", lambda *a, num_workers, **kw: seen.append(num_workers))
    cfg = load_config("mlee/synthetic", ["data.num_workers=2", f"data.records_dir={tmp_path}"])
    man = tiny_corpus.manifest.copy()
    assert man["duration"].sum() < data.WORKERS_FROM_AUDIO_S
    data.prepare_records(cfg, man)
    man["duration"] = data.WORKERS_FROM_AUDIO_S / len(man)
    data.prepare_records(cfg, man)
    man["duration"] = data.WORKERS_FROM_AUDIO_S / len(man) / 2
    data.prepare_records(cfg, man)
    data.prepare_records(load_config("mlee/synthetic", ["data.num_workers=2", "data.speed_perturb=[0.9, 1.1]"]), man)
    man.loc[0, "duration"] = float("nan")  # not known: as asked
    data.prepare_records(cfg, man)
    assert seen == [0, 2, 0, 2, 2]
