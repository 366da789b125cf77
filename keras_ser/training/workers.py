"""Training on several workers: `train.strategy=multi_worker` (docs/scale.md).

Every worker runs the same `keras_ser-train` command, with `TF_CONFIG` naming the cluster and
its own task (`{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker",
"index": 0}}`; a `chief` task may be given too, else worker 0 is the chief). Variables are
mirrored on every worker (`tf.distribute.MultiWorkerMirroredStrategy`) and each step's
gradients averaged over them (Keras scales each replica's loss by one over the number of
replicas, the strategy sums the gradients); `train.batch_size` is the global batch, split over
the workers.

Keras 3's `model.fit` does not run under that strategy (keras-team/keras#20585: its data
adapter hands a `PerReplica` value to a tensor conversion, and its metric reduction averages
scalars over axis 0). `fit` below is the epoch loop keras_ser needs instead: the model's own
`train_step` and `test_step` under `strategy.run`, with the usual Keras callbacks (the best
checkpoint, the schedule, `BackupAndRestore`, the CSV log) driven through a `CallbackList`.

How the workers stay in step:
- Data: every worker reads every record file and keeps its share of each global batch
  (`AutoShardPolicy.DATA`: each batch split into one piece per worker), so that every worker
  runs the same number of steps; a batch with fewer utterances than workers (possible at the
  end of a length bucket) is left out, so that no replica ever gets an empty piece (batch
  normalisation would turn it into NaN). Sharding by file would give workers different
  speakers' shards of different sizes, hence different numbers of steps. Development batches are not split:
  every worker scores the whole development set, so every worker chooses the same epoch.
- State that is not trained: Keras 3 keeps a batch normalisation's moving statistics per
  replica (their variables are not aggregated), so workers would drift apart; after each
  epoch they are set to their mean over the workers, which is exactly the moving average of
  the batch statistics averaged over the workers (the moving average is linear), before the
  epoch is scored and saved. Each replica normalises with its own share of the batch while
  training, as unsynchronised batch normalisation does on one machine's devices.
- Files: only the chief writes the run folder. Another worker runs in a scratch folder that
  starts, on every start of the job, as a copy of the chief's run folder (after a barrier that
  waits for the chief to have prepared it): a job restarted after one worker was killed resumes
  every worker from the chief's last epoch checkpoint, never from a worker's own, which could
  be an epoch apart. The scratch folder is removed when the run ends
  (`$KERAS_SER_WORKER_SCRATCH` keeps it there instead, for tests and debugging).
- The strategy must exist before TensorFlow runs its first operation in the process
  (collective ops are configured at start-up): `start` is the first thing a run does.
"""

import json
import os
import shutil
import tempfile

import keras

_STATE = {"strategy": None, "task": None}


def task():
    """`(type, index, is_chief, workers)` of this process from `TF_CONFIG`, or None without one."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        conf = json.loads(raw)
        cluster, t = conf["cluster"], conf["task"]
        kind, index = t["type"], int(t["index"])
        workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
        members = cluster[kind]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"TF_CONFIG is not a cluster and a task ({e!r}): expected "
                         '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from e
    if kind not in ("chief", "worker") or not 0 <= index < len(members):
        raise ValueError(f"TF_CONFIG: task {t} is not one of the cluster's chief or workers")
    is_chief = kind == "chief" or (kind == "worker" and index == 0 and not cluster.get("chief"))
    return kind, index, is_chief, workers


def start(cfg):
    """Create the multi-worker strategy when `train.strategy` asks for it (once per process,
    before any TensorFlow operation); returns this process's `task()` or None."""
    from keras_ser.errors import ConfigError

    if cfg.train.strategy != "multi_worker":
        return None
    try:
        t = task()
    except ValueError as e:
        raise ConfigError(f"train.strategy=multi_worker: {e}") from None
    if t is None:
        raise ConfigError("train.strategy=multi_worker needs TF_CONFIG in the environment, naming the cluster and "
                          "this worker's task (docs/scale.md)")
    if t[3] > cfg.train.batch_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is the global batch: it must be at least the "
                          f"number of workers ({t[3]})")
    if _STATE["strategy"] is None:
        import tensorflow as tf

        try:
            _STATE["strategy"] = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:  # TensorFlow already ran an operation in this process
            raise ConfigError(f"train.strategy=multi_worker: {e}: run it in a process of its own "
                              "(keras_ser-train), not after other TensorFlow work") from None
        _STATE["task"] = t
    return t


def strategy():
    """The strategy `start` created."""
    if _STATE["strategy"] is None:
        raise RuntimeError("train.strategy=multi_worker: the strategy is created by keras_ser.training.workers.start, "
                           "at the start of the run")
    return _STATE["strategy"]


def active():
    """Whether this process trains as one of several workers."""
    return _STATE["strategy"] is not None


def barrier():
    """Wait until every worker reaches this point (a collective sum of ones)."""
    import tensorflow as tf

    s = strategy()
    s.reduce(tf.distribute.ReduceOp.SUM, s.run(lambda: tf.constant(1.0)), axis=None)


def scratch_dir(out):
    """A non-chief worker's folder for what it writes: a fresh copy of the chief's run folder
    `out` (after the chief has prepared it: call after `barrier`)."""
    kind, index = _STATE["task"][:2]
    keep = os.environ.get("KERAS_SER_WORKER_SCRATCH")
    if keep:
        path = os.path.join(keep, f"{kind}-{index}")
        shutil.rmtree(path, ignore_errors=True)
    else:
        path = os.path.join(tempfile.mkdtemp(prefix=f"keras_ser-{kind}-{index}-"), "run")
    if os.path.isdir(out):
        shutil.copytree(out, path)
    else:
        os.makedirs(path)
    return path


def finish_scratch(path):
    """Remove a non-chief worker's scratch folder when the run ends (unless kept)."""
    if not os.environ.get("KERAS_SER_WORKER_SCRATCH"):
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def fit(model, train_ds, dev_ds, epochs, callbacks, verbose=0):
    """`model.fit(train_ds, validation_data=dev_ds, epochs=epochs, callbacks=callbacks)` under
    the multi-worker strategy (see the module docstring); returns the `History`."""
    import tensorflow as tf

    s = strategy()

    def splits(*b):  # every replica gets at least one utterance of it
        return tf.shape(tf.nest.flatten(b)[0])[0] >= s.num_replicas_in_sync

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = s.experimental_distribute_dataset(train_ds.filter(splits).with_options(options))
    dev = (s.distribute_datasets_from_function(lambda ctx: dev_ds) if dev_ds is not None else None)

    @tf.function
    def train_step(data):
        return {k: s.reduce("MEAN", v, axis=None) for k, v in s.run(model.train_step, args=(data,)).items()}

    @tf.function
    def test_step(data):
        return {k: s.reduce("MEAN", v, axis=None) for k, v in s.run(model.test_step, args=(data,)).items()}

    state = [v for v in model.non_trainable_variables if v.dtype.startswith("float")]

    @tf.function
    def mean_state():
        local = s.run(lambda: [tf.identity(v.value) for v in state])
        return [s.reduce(tf.distribute.ReduceOp.MEAN, x, axis=None) for x in local]

    def sync_state():
        for v, value in zip(state, mean_state() if state else []):
            v.assign(value)

    with s.scope():  # variables the callbacks create (an optimizer built to load a backup) are mirrored too
        return _epochs(model, train, dev, train_step, test_step, sync_state, epochs, callbacks, verbose)


def _epochs(model, train, dev, train_step, test_step, sync_state, epochs, callbacks, verbose):
    history = keras.callbacks.History()
    cbs = keras.callbacks.CallbackList([*callbacks, history], model=model, epochs=epochs, verbose=verbose,
                                       steps=None)
    model.stop_training = False
    model._initial_epoch = None  # BackupAndRestore sets it on_train_begin, as in Keras's fit
    cbs.on_train_begin()
    for epoch in range(model._initial_epoch or 0, epochs):
        model.reset_metrics()
        cbs.on_epoch_begin(epoch)
        logs, step = {}, 0
        for data in train:
            cbs.on_train_batch_begin(step)
            logs = train_step(data)
            cbs.on_train_batch_end(step, logs)
            step += 1
        if step == 0:
            from keras_ser.errors import ConfigError

            raise ConfigError("train.strategy=multi_worker: no training batch has as many utterances as there are "
                              "workers")
        logs = {k: float(v) for k, v in logs.items()}
        sync_state()
        if dev is not None:
            model.reset_metrics()
            val = {}
            for data in dev:
                val = test_step(data)
            logs.update({f"val_{k}": float(v) for k, v in val.items()})
        cbs.on_epoch_end(epoch, logs)
        if verbose and _STATE["task"][2]:  # Keras's progress bar is not driven here: one line an epoch, the chief's
            print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()), flush=True)
        if model.stop_training:
            break
    cbs.on_train_end()
    return history
