"""tfrecords-write OUT_DIR --corpus NAME --root DIR [options]: write a corpus's records, with the
local process pool or an Apache Beam runner.

Examples:
  tfrecords-write records/emodb --corpus emodb --root ../shared/data/emodb --frontend epr
  tfrecords-write records/mine --corpus manifest --root mine.jsonl --runner DirectRunner --num-workers 2
  tfrecords-write gs://bucket/records/big --corpus manifest --root big.jsonl --runner DataflowRunner \\
      --beam-option=--project=my-project --beam-option=--region=europe-west1 \\
      --beam-option=--temp_location=gs://bucket/tmp
"""

import argparse
import os
import sys

from keras_ser.errors import KerasSerError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tfrecords-write", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--corpus", required=True, help="a corpus loader (emodb, ravdess, ...) or 'manifest'")
    parser.add_argument("--root", required=True, help="the corpus folder, or the manifest file")
    parser.add_argument("--frontend", default="mlee")
    parser.add_argument("--labels", nargs="+", default=None, help="the label set (default: every emotion found)")
    parser.add_argument("--shard-by", default="speaker", choices=("speaker", "session"))
    parser.add_argument("--speed", nargs="*", type=float, default=[], help="speed-perturbed copies, e.g. 0.9 1.1")
    parser.add_argument("--trim-db", type=float, default=None, help="trim leading/trailing silence this far below the peak")
    parser.add_argument("--runner", default="local", help="local (a process pool) or a Beam runner: DirectRunner, "
                                                          "DataflowRunner, FlinkRunner, SparkRunner, ...")
    parser.add_argument("--num-workers", type=int, default=2, help="processes (local; DirectRunner)")
    parser.add_argument("--beam-option", action="append", default=[], metavar="--FLAG=VALUE",
                        help="a Beam pipeline option, passed through (repeat for several)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_ser.corpora import load_corpus

    try:
        manifest = load_corpus(args.corpus, args.root).manifest
        kw = dict(frontend=args.frontend, label_names=args.labels, shard_by=args.shard_by,
                  speed_factors=tuple(args.speed), trim_db=args.trim_db)
        if args.runner == "local":
            from tfrecords_tools import write_records

            rs = write_records(manifest, args.out_dir, num_workers=args.num_workers, **kw)
        else:
            try:
                import apache_beam  # noqa: F401

                from tfrecords_tools.beam import write_records_beam
            except ImportError:
                print("tfrecords-write: a Beam runner needs apache-beam: pip install 'keras_ser[beam]'", file=sys.stderr)
                return 2
            options = list(args.beam_option)
            if args.runner == "DirectRunner":
                options = ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.num_workers}", *options]
            rs = write_records_beam(manifest, args.out_dir, runner=args.runner, options=options, **kw)
    except (KerasSerError, OSError, ValueError) as exc:
        print(f"tfrecords-write: {exc}", file=sys.stderr)
        return 2
    print(f"{rs.root}: {rs.meta['num_examples']} examples in {len(rs.meta['shards'])} shards, "
          f"{rs.meta['num_skipped']} skipped, {rs.meta['write_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
