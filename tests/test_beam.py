"""Records written by Apache Beam (DirectRunner, several worker processes) equal the local
writer's, utterance by utterance; a killed pipeline, run again, writes the same dataset."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam", reason="the optional `beam` extra is not installed")

MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _examples(rs):
    out = {}
    for ex in rs.dataset(rs.files(with_perturbed=True), batch_size=None):
        n = int(ex["num_frames"])
        out[ex["utterance_id"].numpy().decode()] = (ex["features"].numpy()[:n], int(ex["label"]))
    return out


def test_beam_records_equal_the_local_writer_s(tiny_corpus, tmp_path):
    from tfrecords_tools import write_records
    from tfrecords_tools.beam import write_records_beam

    man = tiny_corpus.manifest
    kw = dict(frontend="epr", label_names=["neutral", "happy", "sad", "angry"], speed_factors=(0.9,), trim_db=30)
    local = write_records(man, str(tmp_path / "local"), progress=False, **kw)
    beamed = write_records_beam(man, str(tmp_path / "beam"), options=MULTI, **kw)
    assert beamed.meta["fingerprint"] == local.meta["fingerprint"]
    # Everything but the time and the shards' checksums: TensorFlow's float arithmetic in another
    # process may differ in the last bits (the features are compared with a tolerance below).
    def meta(rs):
        return {k: ([{f: v for f, v in s.items() if f != "checksum"} for s in rs.meta["shards"]] if k == "shards" else v)
                for k, v in rs.meta.items() if k != "write_seconds"}

    assert meta(beamed) == meta(local)
    a, b = _examples(local), _examples(beamed)
    assert sorted(a) == sorted(b) and len(a) == 2 * len(man)  # every utterance and its copy
    for uid, (feats, label) in a.items():
        np.testing.assert_allclose(b[uid][0], feats, atol=1e-5, err_msg=uid)
        assert b[uid][1] == label
    assert sorted(os.listdir(tmp_path / "beam" / "stats")) == sorted(os.listdir(tmp_path / "local" / "stats"))
    assert not os.path.exists(tmp_path / "beam" / "beam-results")


KILLED = r"""
import sys
from keras_ser.corpora import read_manifest
from tfrecords_tools.beam import write_records_beam
write_records_beam(read_manifest(sys.argv[1]), sys.argv[2], frontend="mlee", speed_factors=(0.9, 1.1),
                   options=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
"""


@pytest.mark.slow  # ~28 s in CI; the local writer's interrupted write is in CI (tests/test_tfrecords.py)
def test_a_killed_pipeline_run_again_writes_the_same_dataset(tiny_corpus, tmp_path):
    from keras_ser.corpora import save_manifest
    from tfrecords_tools import RecordSet, write_records
    from tfrecords_tools.beam import write_records_beam

    man = tiny_corpus.manifest
    save_manifest(man, str(tmp_path / "m.jsonl"))
    out = str(tmp_path / "beam")
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path / "m.jsonl"), out],
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), start_new_session=True)
    deadline = time.time() + 180
    shards = os.path.join(out, "shards")
    while time.time() < deadline and not (os.path.isdir(shards) and any(f.endswith(".tfrecord") for f in os.listdir(shards))):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and its workers, mid-write
    proc.wait()
    assert not os.path.exists(os.path.join(out, "dataset.json"))
    rs = write_records_beam(man, out, frontend="mlee", speed_factors=(0.9, 1.1), options=MULTI)
    local = write_records(man, str(tmp_path / "local"), frontend="mlee", speed_factors=(0.9, 1.1), progress=False)
    a, b = _examples(local), _examples(RecordSet(out))
    assert sorted(a) == sorted(b)
    for uid, (feats, _) in a.items():
        np.testing.assert_allclose(b[uid][0], feats, atol=1e-5, err_msg=uid)
    assert not any(".tmp-" in f for f in os.listdir(shards))
    rs.verify()


def test_the_cli_writes_with_a_beam_runner(tiny_corpus, tmp_path):
    from keras_ser.corpora import save_manifest
    from tfrecords_tools import RecordSet
    from tfrecords_tools.write import main

    save_manifest(tiny_corpus.manifest.head(20), str(tmp_path / "m.jsonl"))
    assert main([str(tmp_path / "rec"), "--corpus", "manifest", "--root", str(tmp_path / "m.jsonl"), "--frontend", "epr",
                 "--runner", "DirectRunner", "--num-workers", "2"]) == 0
    assert RecordSet(str(tmp_path / "rec")).meta["num_examples"] == 20
    assert main([str(tmp_path / "rec2"), "--corpus", "manifest", "--root", str(tmp_path / "absent.jsonl")]) == 2
