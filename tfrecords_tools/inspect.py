"""`tfrecords-inspect DIR`: counts, shapes and label histogram of a record dataset.

Reads every shard (so it also checks that the shards parse and match `dataset.json`).
"""

import argparse
import collections
import os
import sys

from keras_ser.errors import KerasSerError
from tfrecords_tools.reader import RecordSet


def inspect_dataset(root):
    """Return a dict summary of a record dataset, read from the shards themselves (their
    checksums verified first: a damaged shard is named)."""
    rs = RecordSet(root).verify()
    files = rs.files(with_perturbed=True)
    ds = rs.dataset(files, batch_size=64, bucket=False)
    labels = collections.Counter()
    speakers = collections.Counter()
    frames = []
    for batch in ds:
        for lab in batch["label"].numpy():
            labels[rs.label_names[lab] if lab >= 0 else "(none)"] += 1
        for spk in batch["speaker"].numpy():
            speakers[spk.decode()] += 1
        frames.extend(batch["num_frames"].numpy().tolist())
    n = len(frames)
    if n != rs.meta["num_examples"]:
        raise SystemExit(f"{root}: dataset.json lists {rs.meta['num_examples']} examples, shards hold {n}")
    return {
        "root": root, "examples": n, "shards": len(files), "speakers": len(speakers),
        "feature_dim": rs.feature_dim, "frontend": rs.frontend.get("name"),
        "frames_min": min(frames), "frames_mean": sum(frames) / n, "frames_max": max(frames),
        "labels": dict(sorted(labels.items())), "skipped": rs.meta["num_skipped"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tfrecords-inspect", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="a record dataset folder (holding dataset.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    try:
        s = inspect_dataset(args.root)
    except (KerasSerError, OSError) as exc:
        print(f"tfrecords-inspect: {exc}", file=sys.stderr)
        return 2
    print(f"{s['root']}: {s['examples']} examples in {s['shards']} shards, {s['speakers']} speakers, "
          f"{s['skipped']} skipped at writing")
    print(f"features: {s['frontend']} dim {s['feature_dim']}, frames min {s['frames_min']} "
          f"mean {s['frames_mean']:.1f} max {s['frames_max']}")
    width = max(len(k) for k in s["labels"])
    total = s["examples"]
    for lab, n in s["labels"].items():
        print(f"  {lab:<{width}} {n:6d}  {'#' * int(40 * n / total)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
