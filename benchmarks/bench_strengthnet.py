"""StrengthNet inference speed on ONE CPU core: real-time factor from raw waveform.

    python benchmarks/bench_strengthnet.py [--export DIR] [--n 60] [--batch 1] [--out docs/benchmarks/strengthnet.json]

Times the whole serving path (waveform → log-mel frontend → model → strength, emotion) on the
default synthetic corpus's utterances, one at a time by default, with TensorFlow pinned to one
thread. With --export, the exported SavedModel's `serving_default` is timed; otherwise a freshly
built model at the paper's sizes (weights do not change the cost). RTF = seconds of audio per
second of compute (goal: >= 35x real time).
"""

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--export", default=None)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--xla", action="store_true",
                    help="compile with XLA; waveforms are zero-padded to whole seconds (the masks make "
                         "the outputs independent of padding), so one compilation serves each length bucket")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from keras_ser.audio import load_audio
    from keras_ser.audio.frontends import compute_features, frontend_matrix, get_frontend_config
    from keras_ser.corpora import synthetic

    man = synthetic.generate(synthetic.default_root("default"), size="default", seed=0).manifest
    waves = [load_audio(p) for p in man["path"][: args.n]]
    if args.export and args.xla:
        raise SystemExit("--xla times the freshly built model, not an export")
    if args.export:
        fn = tf.saved_model.load(args.export).signatures["serving_default"]

        def infer(w, n):
            return fn(waveform=w, num_samples=n)
    else:
        from keras_ser.models.strengthnet import build_strengthnet

        model = build_strengthnet(4, 80)
        fcfg = get_frontend_config("strengthnet")
        matrix = frontend_matrix(fcfg)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)],
                     jit_compile=args.xla)
        def infer(w, n):
            feats, frames = compute_features(w, n, fcfg, matrix=matrix)
            return model({"features": feats, "num_frames": frames}, training=False)

    batches = [waves[i: i + args.batch] for i in range(0, len(waves), args.batch)]

    def pack(ws):
        width = max(map(len, ws))
        if args.xla:
            width = -(-width // 16000) * 16000
        x = np.zeros((len(ws), width), np.float32)
        for i, w in enumerate(ws):
            x[i, : len(w)] = w
        return tf.constant(x), tf.constant([len(w) for w in ws], tf.int32)

    packed = [pack(b) for b in batches]
    t = time.perf_counter()
    for x, n in packed if args.xla else packed[:3]:  # warm-up: tracing (and one XLA compilation per shape)
        infer(x, n)
    warmup = time.perf_counter() - t
    t = time.perf_counter()
    for x, n in packed:
        out = infer(x, n)
        _ = out["strength"].numpy()
    seconds = time.perf_counter() - t
    audio = sum(len(w) for w in waves) / 16000
    result = {"what": "export" if args.export else "model (paper sizes, untrained)", "utterances": len(waves),
              "batch": args.batch, "xla": args.xla, "warmup_s": round(warmup, 1), "audio_s": round(audio, 1), "compute_s": round(seconds, 2),
              "rtf_x": round(audio / seconds, 1), "ms_per_utterance": round(1000 * seconds / len(waves), 1),
              "threads": 1, "cpu": platform.processor() or platform.machine(), "tensorflow": tf.__version__}
    from keras_ser.utils import report

    report(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
