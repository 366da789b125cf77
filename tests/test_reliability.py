"""Runs that cannot lie: each case of docs/reliability.md that is not tested beside its code
(predict and serving checks: tests/test_training.py; audio checks: tests/test_audio.py)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from keras_ser.config import load_config
from keras_ser.errors import ConfigError, CorpusError

TINY_MLEE = ("model.params={conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], "
             "lstm_units: 8, attention_units: 8}")


def _root(tiny_corpus):
    return os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))


def _cfg(tmp, tiny_corpus, *extra, preset="mlee/synthetic"):
    return load_config(preset, [
        f"data.root={_root(tiny_corpus)}", "data.synthetic_size=tiny", f"data.records_dir={tmp}/records",
        "data.num_workers=0", "train.epochs=1", "train.verbose=0", "protocol.max_folds=1", TINY_MLEE,
        "export.enabled=false", f"output_dir={tmp}/run", *extra])


# -- 1. a rerun into a run folder with another config --------------------------------------------
def test_a_run_folder_of_another_config_is_not_resumed(tiny_corpus, tmp_path, capsys):
    import warnings

    from keras_ser.training.runner import run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(_cfg(tmp_path, tiny_corpus))
    # Keras's first-epoch warning over a dataset of unknown length ("ran out of data; interrupting
    # training": nothing is cut short) and its tf.data shuffle warning are not shown to the user.
    said = [str(w.message) for w in caught]
    assert not [m for m in said if "ran out of data" in m or "`shuffle=True` was passed" in m], said
    changed = _cfg(tmp_path, tiny_corpus, "data.emotions=[neutral, sad]")
    with pytest.raises(ConfigError, match=r"holds the run of another config.*data\.emotions: \['neutral', 'happy', "
                                          r"'sad', 'angry'\] then, \['neutral', 'sad'\] now"):
        run(changed)
    # What a run only shows or stores elsewhere is no reason to refuse it.
    again = run(_cfg(tmp_path, tiny_corpus, "train.verbose=2", "protocol.max_folds=1"))
    assert again["labels"] == ["neutral", "happy", "sad", "angry"]
    summary = run(changed, force_new=True)
    assert summary["labels"] == ["neutral", "sad"] and np.asarray(summary["folds"][0]["confusion"]).shape == (2, 2)
    kept = [d for d in os.listdir(tmp_path) if d.startswith("run.previous-")]
    assert len(kept) == 1 and os.path.exists(tmp_path / kept[0] / "metrics.json")
    assert "kept as" in capsys.readouterr().out


def test_a_run_from_before_a_config_key_existed_is_resumed_at_its_default(tiny_corpus, tmp_path):
    """keras_ser gains config keys; their defaults keep the earlier behaviour, so a run written
    before a key existed is the same run as one at that key's default, and another value is not."""
    from keras_ser.training.runner import run
    from keras_ser.utils import read_json, write_json

    first = run(_cfg(tmp_path, tiny_corpus))
    stamp = read_json(tmp_path / "run" / "run.json")
    del stamp["config"]["strength.rank_weight"]  # as written by a keras_ser without that key
    write_json(stamp, tmp_path / "run" / "run.json")
    again = run(_cfg(tmp_path, tiny_corpus))
    assert again["folds"][0]["wa"] == first["folds"][0]["wa"]
    assert read_json(tmp_path / "run" / "run.json")["config"]["strength.rank_weight"] == 0.0  # now recorded
    write_json(stamp, tmp_path / "run" / "run.json")
    with pytest.raises(ConfigError, match=r"strength\.rank_weight: not a key of keras_ser then, 0\.5 now"):
        run(_cfg(tmp_path, tiny_corpus, "strength.rank_weight=0.5"))


def test_a_folder_without_a_fingerprint_is_not_taken_for_this_run(tiny_corpus, tmp_path):
    from keras_ser.training.runner import run

    os.makedirs(tmp_path / "run" / "folds")
    with pytest.raises(ConfigError, match="holds a run without run.json"):
        run(_cfg(tmp_path, tiny_corpus))


# -- 2. resuming restores the best value and the patience count ----------------------------------
def test_the_best_checkpoint_survives_an_interruption(tmp_path):
    """Keras's own callbacks forgot their best value on resume: the first resumed epoch always
    overwrote best.keras and patience restarted. The same sequence of dev losses, interrupted
    or not, keeps the same epoch and stops at the same epoch."""
    import keras

    from keras_ser.training.loop import BestCheckpoint

    losses = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7]

    def replay(start, stop, cb):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        cb.set_model(model)
        model.stop_training = False  # as fit sets it
        cb.on_train_begin()
        for epoch in range(start, stop):
            cb.on_epoch_begin(epoch)
            model.layers[0].kernel.assign(np.full((2, 1), epoch, "float32"))  # which epoch a file holds
            cb.on_epoch_end(epoch, {"val_loss": losses[epoch]})
            if model.stop_training:
                return epoch
        return None

    def saved_epoch(path):
        return int(keras.saving.load_model(path).layers[0].kernel.numpy()[0, 0])

    whole = str(tmp_path / "whole" / "best.keras")
    os.makedirs(os.path.dirname(whole))
    stopped = replay(0, 6, BestCheckpoint(whole, patience=3))
    assert stopped == 4 and saved_epoch(whole) == 1
    # Killed after epoch 2 was recorded (its backup never written): resumed at epoch 2.
    parts = str(tmp_path / "parts" / "best.keras")
    os.makedirs(os.path.dirname(parts))
    assert replay(0, 3, BestCheckpoint(parts, patience=3)) is None
    resumed = BestCheckpoint(parts, patience=3)
    assert replay(2, 6, resumed) == 4 and saved_epoch(parts) == 1 and resumed.best == pytest.approx(0.8)


# -- 3. configs that cannot mean anything ----------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "train.epochs: must be >= 1"), ("train.epochs=-1", "train.epochs: must be >= 1"),
    ("train.learning_rate=-1", "train.learning_rate: must be > 0"), ("data.num_workers=-3", "data.num_workers"),
    ("data.max_frames=0", "data.max_frames"), ("train.batch_size=0", "train.batch_size: must be >= 1"),
    ("protocol.max_folds=0", "protocol.max_folds: must be >= 1 \\(or null\\)"),
    ("data.speed_perturb=[0.0]", "data.speed_perturb\\[0\\]"), ("data.emotions=[sad, sad]", "listed twice"),
])
def test_numbers_that_cannot_mean_anything_are_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("mlee/synthetic", [override])


def test_a_label_the_corpus_lacks_is_an_error_before_training(tiny_corpus, tmp_path):
    from keras_ser.training.runner import run

    with pytest.raises(CorpusError, match=r"data.emotions: 'angy' does not occur in synthetic \(its emotions: angry"):
        run(_cfg(tmp_path, tiny_corpus, "data.emotions=[neutral, angy]"))
    assert not os.path.exists(tmp_path / "records")


def _manifest_file(tiny_corpus, tmp_path, rows):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _rows(man):
    return [{"path": p, "speaker": s, "emotion": e} for p, s, e in zip(man["path"], man["speaker"], man["emotion"])]


def test_a_fold_without_training_examples_of_a_label_is_an_error(tiny_corpus, tmp_path):
    """Only the test speaker says 'sad': the model would learn a class it never saw."""
    from keras_ser.training.runner import run

    man = tiny_corpus.manifest
    first = sorted(man["speaker"].unique())[0]
    man = man[(man["emotion"] != "sad") | (man["speaker"] == first)]
    path = _manifest_file(tiny_corpus, tmp_path, _rows(man))
    with pytest.raises(CorpusError, match=f"fold test-{first} has no training utterance of 'sad'"):
        run(_cfg(tmp_path, tiny_corpus, "data.corpus=manifest", f"data.root={path}"))


def test_a_speaker_with_one_utterance_is_not_a_fold(tiny_corpus, tmp_path):
    from keras_ser.training.runner import run

    man = tiny_corpus.manifest
    rows = _rows(man) + [{"path": man["path"].iloc[0], "speaker": "aaa_alone", "emotion": "sad",
                          "utterance_id": "alone"}]
    path = _manifest_file(tiny_corpus, tmp_path, rows)
    with pytest.raises(CorpusError, match="fold test-aaa_alone has 1 test utterance, fewer than "
                                          "protocol.min_fold_utterances=5"):
        run(_cfg(tmp_path, tiny_corpus, "data.corpus=manifest", f"data.root={path}"))


# -- 4, 5. the records cache is keyed by what determines the records -------------------------------
def test_the_records_folder_is_keyed_by_labels_and_file_content(tiny_corpus, tmp_path):
    from keras_ser.training.data import records_dir

    man = tiny_corpus.manifest.head(8).copy()
    cfg = load_config("mlee/synthetic")
    base = records_dir(cfg, man)
    assert records_dir(load_config("mlee/synthetic", ["data.emotions=[neutral, sad]"]), man) != base
    assert records_dir(load_config("mlee/synthetic", ["data.speed_perturb=[0.9]"]), man) != base
    copy = tmp_path / "a.wav"
    shutil.copy(man["path"].iloc[0], copy)
    man.loc[man.index[0], "path"] = str(copy)
    before = records_dir(cfg, man)
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 10**9))  # copied with new times: same bytes
    assert records_dir(cfg, man) == before
    data = bytearray(copy.read_bytes())
    data[-2:] = b"\x01\x02"  # a repaired file: same size, one sample changed
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert records_dir(cfg, man) != before


def test_file_digests_are_memoised_by_size_and_time(tmp_path, monkeypatch):
    from keras_ser import utils

    monkeypatch.setattr(utils, "_DIGESTS", {})
    a, memo = tmp_path / "a.bin", str(tmp_path / "memo.json")
    a.write_bytes(b"one")
    first = utils.file_digests([a, tmp_path / "missing"], memo)
    assert first[1] is None and utils.read_json(memo)[str(a)][2] == first[0] == utils.file_checksum(a)
    reads = []
    monkeypatch.setattr(utils, "file_checksum", lambda p: reads.append(p) or "recomputed")
    monkeypatch.setattr(utils, "_DIGESTS", {})  # another process: the memo file answers
    assert utils.file_digests([a], memo) == first[:1] and reads == []
    a.write_bytes(b"two")  # same size, new time: read again
    os.utime(a, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert utils.file_digests([a], memo) == ["recomputed"] and reads == [str(a)]
    a.unlink()
    (tmp_path / "b").write_bytes(b"b")
    utils.file_digests([tmp_path / "b"], memo)
    assert str(a) not in utils.read_json(memo)  # dropped once written again


def test_a_damaged_shard_is_named_and_rewritten(tiny_corpus, tmp_path, capsys):
    from tfrecords_tools import RecordSet, write_records

    man = tiny_corpus.manifest[tiny_corpus.manifest["speaker"].isin(sorted(tiny_corpus.manifest["speaker"])[:1])]
    out = str(tmp_path / "rec")
    rs = write_records(man, out, frontend="epr", progress=False)
    shard = rs.files()[0]
    data = bytearray(open(shard, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one flipped bit-pattern, same size
    open(shard, "wb").write(bytes(data))
    with pytest.raises(Exception, match="damaged shard: its checksum differs"):
        RecordSet(out).verify()
    open(shard + ".tmp-999999", "wb").write(b"half a shard")  # a killed writer's leftover
    rs = write_records(man, out, frontend="epr", progress=False)
    printed = capsys.readouterr().out
    assert "damaged shard" in printed and os.path.basename(shard) in printed and "writing the records again" in printed
    assert not os.path.exists(shard + ".tmp-999999") and "removed" in printed
    rs.verify()
    open(shard, "ab").write(b"tail")  # truncated or appended: the size says so without reading it
    with pytest.raises(Exception, match="damaged shard: .* bytes"):
        RecordSet(out)


def test_every_file_left_out_is_counted_with_its_reason(tiny_corpus, tmp_path):
    """NaN samples, a 100-byte WAV, a missing file whose duration is given: each is reported at
    the end of the run and in metrics.json, and the folds count only what was trained and tested."""
    from keras_ser.training.runner import run

    man = tiny_corpus.manifest
    speaker = sorted(man["speaker"].unique())[0]
    bad_nan, bad_tiny = tmp_path / "nan.wav", tmp_path / "tiny.wav"
    sf.write(bad_nan, np.array([0.1, np.nan] * 8000, "float32"), 16000, subtype="FLOAT")
    bad_tiny.write_bytes(open(man["path"].iloc[0], "rb").read()[:100])
    extra = [{"path": str(bad_nan), "speaker": speaker, "emotion": "sad", "duration": 1.0},
             {"path": str(bad_tiny), "speaker": speaker, "emotion": "sad", "duration": 1.0},
             {"path": str(tmp_path / "gone.wav"), "speaker": speaker, "emotion": "sad", "duration": 1.0}]
    path = _manifest_file(tiny_corpus, tmp_path, _rows(man) + extra)
    summary = run(_cfg(tmp_path, tiny_corpus, "data.corpus=manifest", f"data.root={path}"))
    skipped = {s["example"]: s for s in summary["skipped"]}
    assert "NaN or infinite" in skipped[str(bad_nan)]["reason"] and "does not exist" in skipped[str(tmp_path / "gone.wav")]["reason"]
    assert sum(s["count"] for s in summary["skipped"]) == 3
    fold = summary["folds"][0]
    assert fold["fold"] == f"test-{speaker}" and fold["test"] == (man["speaker"] == speaker).sum()


# -- tracebacks that are now messages -------------------------------------------------------------
def test_a_manifest_with_a_non_numeric_duration_names_the_line(tmp_path):
    from keras_ser.corpora import read_manifest

    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"path": "a.wav", "speaker": "s", "duration": "abc"}) + "\n")
    with pytest.raises(CorpusError, match=r"m.jsonl:1: duration must be a number of seconds or null, got 'abc'"):
        read_manifest(str(path))


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_dir_is_a_message(tiny_corpus, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    out = _cli("keras_ser.cli.train", "mlee/synthetic", "data.synthetic_size=tiny", f"output_dir={ro}/run",
               f"data.root={_root(tiny_corpus)}", f"data.records_dir={tmp_path}/rec", "train.epochs=1")
    assert out.returncode == 2 and "Permission denied" in out.stderr and "Traceback" not in out.stderr


def test_read_only_folders_are_messages_even_for_root(tiny_corpus, tmp_path, monkeypatch):
    """The CLI turns any OSError into a line naming the path (as root, a read-only folder is
    writable, so the error is made here)."""
    from keras_ser.cli import train

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro" / "run"))

    monkeypatch.setattr("keras_ser.training.runner.prepare_output", refuse)
    code = train.main(["mlee/synthetic", "data.synthetic_size=tiny", f"data.root={_root(tiny_corpus)}",
                       f"output_dir={tmp_path}/ro/run", f"data.records_dir={tmp_path}/rec", "train.epochs=1"])
    assert code == 2


def test_synth_onto_a_file_is_a_message(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    out = _cli("keras_ser.cli.synth", str(f), "--size", "tiny")
    assert out.returncode == 2 and "is a file" in out.stderr and "Traceback" not in out.stderr


# -- lost: workers outliving a killed run ---------------------------------------------------------
KILLED_WRITER = r"""
import sys
from keras_ser.corpora import synthetic
from tfrecords_tools import write_records
m = synthetic.generate(sys.argv[1], size="tiny", seed=0).manifest
write_records(m, sys.argv[2], frontend="mlee", num_workers=2, progress=False, speed_factors=(0.9, 1.1))
"""


def test_record_workers_end_with_a_killed_parent(tiny_corpus, tmp_path):
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, _root(tiny_corpus), str(tmp_path / "rec")],
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 120
    while time.time() < deadline and len(parent.children(recursive=True)) < 2:
        time.sleep(0.2)
    children = parent.children(recursive=True)
    assert len(children) >= 2, "the writer started no workers"
    time.sleep(3)  # the workers are writing
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert alive == [], f"{len(alive)} workers outlived their parent"
