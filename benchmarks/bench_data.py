"""Data-pipeline benchmarks: frontends vs librosa, record write/read throughput, bucketing.

    python benchmarks/bench_data.py [--emodb ../shared/data/emodb] [--out docs/benchmarks/data.json]

Real-time factor (RTF) here is seconds of audio processed per second of compute on ONE core
(TensorFlow and BLAS are pinned to one thread), so "x real time" numbers are per core.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def machine():
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version()}


def bench_frontends(manifest, limit):
    import librosa
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from keras_ser.audio import PRESETS, load_audio
    from keras_ser.audio.frontends import compute_features, frontend_matrix

    wavs = [load_audio(p) for p in manifest["path"][:limit]]
    seconds = sum(len(w) for w in wavs) / 16000
    out = {}
    for name, c in PRESETS.items():
        matrix = frontend_matrix(c)
        fn = tf.function(lambda x, c=c, m=matrix: compute_features(x, None, c, matrix=m),
                         input_signature=[tf.TensorSpec([1, None], tf.float32)], reduce_retracing=True)
        fn(wavs[0][None])  # trace
        t = time.perf_counter()
        for w in wavs:
            fn(w[None])
        ours = time.perf_counter() - t
        mel = c.n_mels
        t = time.perf_counter()
        for w in wavs:
            S = np.abs(librosa.stft(w, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                                    window=c.window, center=False)) ** c.power
            if mel:
                S = librosa.feature.melspectrogram(S=S, sr=16000, n_mels=mel, fmin=c.fmin,
                                                   htk=c.mel_scale == "htk", norm=c.mel_norm)
            if c.log:
                S = np.log(S + c.log_offset)
        ref = time.perf_counter() - t
        out[name] = {"audio_s": round(seconds, 1), "keras_ser_rtf": round(seconds / ours, 1),
                     "librosa_rtf": round(seconds / ref, 1)}
        print(f"frontend {name:22s} keras_ser {seconds / ours:7.1f}x  librosa {seconds / ref:7.1f}x real time")
    return out


def bench_records(manifest, workdir, num_workers):
    from tfrecords_tools import write_records

    seconds = float(manifest["duration"].sum()) if manifest["duration"].notna().all() else None
    t = time.perf_counter()
    rs = write_records(manifest, os.path.join(workdir, "rec"), frontend="epr", num_workers=num_workers,
                       progress=False, overwrite=True)
    write_s = time.perf_counter() - t
    n = rs.meta["num_examples"]
    files = rs.files()
    t = time.perf_counter()
    frames = 0
    for b in rs.dataset(files, batch_size=32, bucket=False):
        frames += int(b["num_frames"].numpy().sum())
    read_s = time.perf_counter() - t

    from tfrecords_tools import padded_fraction

    plain = padded_fraction(rs.dataset(files, 16, shuffle=True, bucket=False))
    bucketed = padded_fraction(rs.dataset(files, 16, shuffle=True, bucket=True))
    out = {"examples": n, "workers": num_workers, "write_utt_per_s": round(n / write_s, 1),
           "read_utt_per_s": round(n / read_s, 1), "read_frames_per_s": round(frames / read_s),
           "padded_fraction_plain": round(float(plain), 4), "padded_fraction_bucketed": round(float(bucketed), 4)}
    if seconds:
        out["write_rtf"] = round(seconds / write_s, 1)
    print(f"records: write {n / write_s:.1f} utt/s ({num_workers} workers), read {n / read_s:.1f} utt/s; "
          f"padded frames plain {plain:.1%} vs bucketed {bucketed:.1%}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emodb", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "emodb"))
    ap.add_argument("--limit", type=int, default=120, help="utterances for the frontend benchmark")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "benchmarks", "data.json"))
    args = ap.parse_args()
    from keras_ser.corpora import load_corpus, synthetic

    if os.path.isdir(args.emodb):
        manifest, _ = load_corpus("emodb", args.emodb)
        corpus = "emodb"
    else:
        print(f"{args.emodb} absent: using the default synthetic corpus", file=sys.stderr)
        manifest = synthetic.generate(synthetic.default_root("default"), "default").manifest
        corpus = "synthetic-default"
    with tempfile.TemporaryDirectory() as tmp:
        result = {"machine": machine(), "corpus": corpus,
                  "frontends": bench_frontends(manifest, args.limit),
                  "records": bench_records(manifest, tmp, args.workers)}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
