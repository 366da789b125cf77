"""train.strategy=multi_worker: two worker processes on 127.0.0.1 (CPU), as a cluster runs them."""

import csv
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_ser.config import load_config
from keras_ser.errors import ConfigError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="spawns TensorFlow workers on local ports")


def _ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(out, tmp_path, epochs, export=True):
    hosts = [f"127.0.0.1:{p}" for p in _ports(2)]
    env = dict(os.environ, KERAS_SER_DATA=str(tmp_path / "data"), KERAS_SER_WORKER_SCRATCH=str(tmp_path / "scratch"),
               TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "keras_ser.cli.train", "mlee/synthetic", "data.synthetic_size=tiny",
           "protocol.max_folds=1", f"train.epochs={epochs}", "train.patience=100", "train.strategy=multi_worker",
           f"export.enabled={str(export).lower()}", f"output_dir={out}"]
    procs = []
    for i in range(2):
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})
        log = open(tmp_path / f"worker{i}-{time.time_ns()}.log", "w")
        procs.append((subprocess.Popen(cmd, env=dict(env), stdout=log, stderr=subprocess.STDOUT), log.name))
    return procs


def _wait(procs, timeout=300):
    for p, log in procs:
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "timeout"
        assert rc == 0, f"worker exited with {rc}:\n" + open(log).read()[-3000:]


def _epochs_logged(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def _same_weights(out, tmp_path):
    from keras_ser.training.loop import load_model

    scratch = tmp_path / "scratch" / "worker-1"
    assert not [p for p in os.listdir(out) if "worker" in p]  # the chief's folder holds only the chief's files
    chief = load_model(str(out / "folds" / "test-synth_s01" / "dominant" / "best.keras"))
    other = load_model(str(scratch / "folds" / "test-synth_s01" / "dominant" / "best.keras"))
    for a, b in zip(chief.weights, other.weights):  # moving statistics included
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_two_workers_train_in_step(tmp_path):
    """CI's multi-worker run: one epoch, no export (the kill, the resume and the export are in
    the slow test below)."""
    out = tmp_path / "run"
    _wait(_start(out, tmp_path, epochs=1, export=False))
    assert _epochs_logged(out / "folds" / "test-synth_s01" / "dominant" / "history.csv") == [0]
    assert json.load(open(out / "metrics.json"))["folds_run"] == 1
    _same_weights(out, tmp_path)


@pytest.mark.slow  # about 95 s of CI's 2 cores: two pairs of TensorFlow workers, four epochs and an export
def test_two_workers_train_in_step_and_resume_after_one_is_killed(tmp_path):
    out = tmp_path / "run"
    history = out / "folds" / "test-synth_s01" / "dominant" / "history.csv"
    procs = _start(out, tmp_path, epochs=4)
    deadline = time.time() + 240
    while len(_epochs_logged(history)) < 2 and time.time() < deadline and procs[0][0].poll() is None:
        time.sleep(0.2)
    assert len(_epochs_logged(history)) >= 2, open(procs[0][1]).read()[-3000:]
    procs[1][0].send_signal(signal.SIGKILL)  # a worker lost mid-training: the chief waits on it ...
    time.sleep(2)
    procs[0][0].send_signal(signal.SIGKILL)  # ... and the job is restarted, every worker again
    for p, _ in procs:
        p.wait()
    before = _epochs_logged(history)
    assert 2 <= len(before) < 4
    _wait(_start(out, tmp_path, epochs=4))
    epochs = _epochs_logged(history)
    assert epochs == list(range(4)), f"resumed from the last epoch checkpoint, none repeated: {epochs}"
    assert json.load(open(out / "metrics.json"))["folds_run"] == 1
    assert glob.glob(str(out / "export" / "*" / "*" / "saved_model.pb"))
    _same_weights(out, tmp_path)


def test_multi_worker_needs_a_cluster_and_a_keras_system(monkeypatch):
    from keras_ser.training import workers

    monkeypatch.delenv("TF_CONFIG", raising=False)
    cfg = load_config("mlee/synthetic", ["train.strategy=multi_worker"])
    with pytest.raises(ConfigError, match="needs TF_CONFIG in the environment"):
        workers.start(cfg)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}')
    with pytest.raises(ConfigError, match="is not one of the cluster's chief or workers"):
        workers.start(cfg)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not a cluster and a task"):
        workers.start(cfg)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(ConfigError, match="at least the number of workers"):
        workers.start(load_config("mlee/synthetic", ["train.strategy=multi_worker", "train.batch_size=2"]))
    assert workers.task() == ("worker", 0, True, 3)
    from keras_ser.training.runner import check_model_params

    for preset in ("epr/synthetic", "functionals/synthetic"):
        with pytest.raises(ConfigError, match="train.strategy: .*(multi_worker|several workers)"):
            check_model_params(load_config(preset, ["train.strategy=multi_worker"]))
