"""Records written by an Apache Beam pipeline: the local writer's layout, schema and fingerprint,
on any Beam runner (DirectRunner here; Dataflow, Flink or Spark are the user's choice).

    manifest → shard tasks (one per speaker or session, and speed)      `plan_records`
             → decode, features, one shard each, written atomically     `write_shard`, on the workers
             → per-shard statistics, manifest.jsonl, skipped.csv,
               dataset.json (last)                                      `finish_records`, here

A shard is written under a temporary name on the worker that computes it and renamed onto
its final name, so a retried bundle rewrites the same file: never two copies, never a partial
shard under the final name. The workers' results (one JSON line per shard: what it holds and
its statistics) go through Beam's transactional text sink, and `dataset.json` is written by
the launching process only when every shard's result is in. A killed pipeline leaves no
`dataset.json`; running it again writes the dataset (the next writer removes the temporary
files a stopped local worker left).

    from tfrecords_tools.beam import write_records_beam
    write_records_beam(manifest, "records/emodb", frontend="epr", runner="DirectRunner",
                       options=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])

Needs the `beam` extra (`pip install keras_ser[beam]`). openSMILE functionals are not computed
here: they run in TensorFlow-free workers (`tfrecords_tools.opensmile_features`), which a Beam
worker that also computes features with TensorFlow is not.
"""

import glob
import json
import os
import shutil
import time

from keras_ser.utils import die_with
from tfrecords_tools.reader import RecordSet
from tfrecords_tools.writer import finish_records, plan_records, write_shard


def _write_on_worker(task, launcher=None):
    """`write_shard` in a Beam worker. With a local runner (`launcher`: the launching process's
    pid) the worker ends as soon as the launching process does: a killed local pipeline must not
    leave workers writing shards behind it (DirectRunner's workers are not its children)."""
    if launcher is not None:
        die_with(launcher)
    return write_shard(task)


def _jsonable(res):
    """A shard result with plain-JSON values (the text sink's)."""
    return json.dumps(res, default=lambda v: v.item() if hasattr(v, "item") else str(v))


def write_records_beam(manifest, out_dir, frontend="mlee", label_names=None, shard_by="speaker", speed_factors=(),
                       include_waveform=False, trim_db=None, overwrite=False, runner="DirectRunner", options=()):
    """`write_records` on an Apache Beam runner. Same arguments (less the local process pool's),
    plus `runner` and `options`: Beam pipeline options as command-line flags (e.g.
    `--direct_num_workers=2`, or a Dataflow project, region and `--temp_location`), passed
    through as they are. Returns the `RecordSet`; an identical, intact dataset is reused."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    plan = plan_records(manifest, out_dir, frontend, label_names, shard_by, speed_factors, include_waveform, trim_db,
                        overwrite)
    if isinstance(plan, RecordSet):
        return plan
    results_dir = os.path.join(out_dir, "beam-results")
    shutil.rmtree(results_dir, ignore_errors=True)
    start = time.time()
    with beam.Pipeline(options=PipelineOptions([f"--runner={runner}", *options])) as p:
        _ = (p
             | "shard tasks" >> beam.Create(plan.tasks, reshuffle=True)
             | "write shards" >> beam.Map(_write_on_worker, launcher=os.getpid() if runner == "DirectRunner" else None)
             | "as JSON" >> beam.Map(_jsonable)
             | "results" >> beam.io.WriteToText(os.path.join(results_dir, "shard"), file_name_suffix=".jsonl"))
    results = [json.loads(line) for path in sorted(glob.glob(os.path.join(results_dir, "shard*.jsonl")))
               for line in open(path) if line.strip()]
    rs = finish_records(plan, results, time.time() - start)
    shutil.rmtree(results_dir, ignore_errors=True)
    return rs
