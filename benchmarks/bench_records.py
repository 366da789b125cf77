"""Records throughput: this process, the local process pool and Beam's DirectRunner.

    python benchmarks/bench_records.py [--ravdess ../shared/data/ravdess] [--workers 2]
        [--frontend mlee] [--out docs/benchmarks/records.json]

Utterances (and seconds of audio) written per second of wall time, on the tiny and default
synthetic corpora and, when given, RAVDESS; each writer writes into a fresh folder, the runs one
after the other on a quiet machine, this process first (its first write, tiny's, pays
TensorFlow's first-op start-up, as a training run's does; the pool's workers pay their own
import and start-up in every write). These rows set `keras_ser.training.data.WORKERS_FROM_AUDIO_S`
(below it a run writes in this process). Needs the `beam` extra for the DirectRunner rows
(`--no-beam` leaves them out).
"""

import argparse
import functools
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def one(name, write, out):
    t = time.perf_counter()
    rs = write(out_dir=out)
    seconds = time.perf_counter() - t
    audio = float(rs.manifest.loc[rs.manifest["speed"] == 1.0, "duration"].sum())
    return {"writer": name, "utterances": int(rs.meta["num_examples"]), "wall_seconds": round(seconds, 1),
            "utterances_per_second": round(rs.meta["num_examples"] / seconds, 1),
            "audio_seconds_per_second": round(audio / seconds, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ravdess", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--frontend", default="mlee")
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-beam", action="store_true")
    args = ap.parse_args(argv)
    from keras_ser.corpora import load_corpus, synthetic
    from keras_ser.utils import report
    from tfrecords_tools import write_records
    from tfrecords_tools.beam import write_records_beam

    corpora = {f"synthetic {size}": synthetic.generate(synthetic.default_root(size), size=size).manifest
               for size in ("tiny", "default")}
    if args.ravdess:
        corpora["RAVDESS"] = load_corpus("ravdess", args.ravdess).manifest
    rows = []
    options = ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
    for corpus, manifest in corpora.items():
        with tempfile.TemporaryDirectory() as tmp:
            writers = [("this process", functools.partial(write_records, manifest, frontend=args.frontend,
                                                          num_workers=0, progress=False)),
                       (f"local pool, {args.workers} processes", functools.partial(
                           write_records, manifest, frontend=args.frontend, num_workers=args.workers, progress=False))]
            if not args.no_beam:
                writers.append((f"Beam DirectRunner, {args.workers} workers", functools.partial(
                    write_records_beam, manifest, frontend=args.frontend, options=options)))
            for i, (name, write) in enumerate(writers):
                rows.append({"corpus": corpus, **one(name, write, os.path.join(tmp, str(i)))})
        print(*rows[-len(writers):], sep="\n", flush=True)
    report({"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            "frontend": args.frontend, "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
