"""Training throughput: steps per second and the fraction of step time spent waiting for input.

    python benchmarks/bench_train.py [PRESET] [key=value ...] [--steps 40] [--out docs/benchmarks/train_cpu.json]

Builds the preset's first fold and first recipe stage exactly as `keras_ser-train` does (records,
bucketed tf.data pipeline with class weights, model, optimiser), runs a few warm-up steps (tracing), then times
`--steps` training steps. Each step is split into the time spent in `next(iterator)` (waiting for
the input pipeline; with prefetching this is only the part the pipeline could not hide) and the
time of the synchronous train step. Input-wait fraction = wait / (wait + compute).
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
    ap.add_argument("preset", nargs="?", default="mlee/synthetic")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import keras
    import tensorflow as tf

    from keras_ser.config import load_config
    from keras_ser.training import data, loop, mlee

    cfg = load_config(args.preset, ["train.verbose=0", *args.overrides])
    with loop.precision(cfg):
        manifest = data.load_manifest(cfg)
        rs = data.prepare_records(cfg, manifest)
        fold = data.fold_list(cfg, manifest)[0]
        stage = mlee.recipe(cfg)[0]
        targets = mlee.stage_targets(cfg, manifest, rs.label_names, stage.kind)
        train_ds, _, _, weights = mlee.make_datasets(rs, fold, cfg, targets)
        stats = rs.feature_stats(data.fold_shards(rs, fold.train))
        model = mlee.compile_stage(mlee.build_model(cfg, rs, stats, stage), stage, weights, cfg)

        it = iter(train_ds.repeat())
        waits, computes, frames, utts = [], [], 0, 0
        for step in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            x, y, sw = next(it)
            t1 = time.perf_counter()
            model.train_on_batch(x, y, sample_weight=sw)  # returns host floats: synchronous
            t2 = time.perf_counter()
            if step >= args.warmup:
                waits.append(t1 - t0)
                computes.append(t2 - t1)
                frames += int(np.sum(x["num_frames"]))
                utts += int(x["num_frames"].shape[0])
    total = sum(waits) + sum(computes)
    from keras_ser.audio import get_frontend_config

    hop_s = get_frontend_config(cfg.data.frontend).hop_length / 16000
    gpus = tf.config.list_physical_devices("GPU")
    result = {
        "preset": args.preset, "overrides": args.overrides, "steps": args.steps, "batch_size": cfg.train.batch_size,
        "steps_per_s": round(args.steps / total, 3), "utterances_per_s": round(utts / total, 1),
        "audio_s_per_s": round(frames * hop_s / total, 1),
        "input_wait_fraction": round(sum(waits) / total, 4),
        "median_step_ms": round(1000 * float(np.median(np.add(waits, computes))), 1),
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
