"""EPR training throughput: segments per second through the segment classifier's training steps.

    python benchmarks/bench_epr.py [PRESET] [key=value ...] [--steps 30] [--out docs/benchmarks/epr_cpu.json]

Builds the preset's first fold as `keras_ser-train` does (records, the tf.data pipeline that cuts
32-frame segments from whole utterances and shuffles them, the VGG and its optimiser), runs a few
warm-up steps (tracing), then times `--steps` training steps, split into the wait for the input
pipeline and the synchronous train step (input-wait fraction = wait / total).
"""

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset", nargs="?", default="epr/synthetic")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import keras
    import tensorflow as tf

    from keras_ser.config import load_config
    from keras_ser.training import data, epr, loop

    cfg = load_config(args.preset, ["train.verbose=0", *args.overrides])
    with loop.precision(cfg):
        manifest = data.load_manifest(cfg)
        rs = data.prepare_records(cfg, manifest)
        labelled = data.labelled(cfg, manifest)
        fold = data.fold_list(cfg, labelled)[0]
        labels_of = dict(zip(labelled["utterance_id"], labelled["emotion"].map(rs.label_names.index)))
        table = epr.make_table(cfg, rs, fold.train, labels_of, None, None, len(rs.label_names))
        net = epr.SegmentClassifier(cfg, rs, epr.utterance_stats(rs, cfg, fold.train))
        it = iter(epr.segment_dataset(rs, cfg, table, shuffle=True).repeat())
        waits, computes, segments = [], [], 0
        for step in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            x, y, sw = next(it)
            t1 = time.perf_counter()
            net.model.train_on_batch(x, y, sample_weight=sw)  # returns host floats: synchronous
            t2 = time.perf_counter()
            if step >= args.warmup:
                waits.append(t1 - t0)
                computes.append(t2 - t1)
                segments += int(x["segments"].shape[0])
    total = sum(waits) + sum(computes)
    gpus = tf.config.list_physical_devices("GPU")
    result = {
        "preset": args.preset, "overrides": args.overrides, "steps": args.steps, "batch_size": cfg.train.batch_size,
        "model": cfg.model.params, "segment_frames": cfg.epr.segment_frames, "segment_hop": cfg.epr.segment_hop,
        "segments_per_s": round(segments / total, 1), "steps_per_s": round(args.steps / total, 3),
        "input_wait_fraction": round(sum(waits) / total, 4),
        "median_step_ms": round(1000 * float(np.median(np.add(waits, computes))), 1),
        "training_segments_per_epoch": int(np.sum(table.counts)),
        "mixed_precision": cfg.train.mixed_precision, "jit_compile": cfg.train.jit_compile,
        "device": tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU",
        "cores": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    from keras_ser.utils import report

    report(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
