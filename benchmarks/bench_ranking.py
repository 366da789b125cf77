"""Rank-SVM scale: ranking labels for 100k utterances in well under 2 GB.

    python benchmarks/bench_ranking.py [--utterances 100000] [--out docs/benchmarks/ranking.json]

Simulated IS09-sized functionals (384-d): S speakers x 5 categories (neutral + 4 emotions) x U
utterances, with a strength-dependent direction per emotion. Fits `StrengthLabeler` both ways
(`per="emotion"`: one function over all speakers' within-speaker pairs; `per="speaker_emotion"`:
one per group) and reports wall time, peak resident memory of the process (ru_maxrss), the number
of ordered pairs the objective covers, and what holding those pairs as dense difference vectors
would have cost.
"""

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--utterances", type=int, default=100_000)
    ap.add_argument("--speakers", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from keras_ser.labels.ranking import StrengthLabeler

    rng = np.random.default_rng(0)
    cats = ["neutral", "happy", "sad", "angry", "surprise"]
    per_group = args.utterances // (args.speakers * len(cats))
    n = per_group * args.speakers * len(cats)
    spk = np.repeat([f"s{i:03d}" for i in range(args.speakers)], per_group * len(cats))
    emo = np.tile(np.repeat(cats, per_group), args.speakers)
    strength = np.where(emo == "neutral", 0.0, rng.uniform(0.1, 1.0, n))
    directions = {c: rng.standard_normal(args.dim) for c in cats}
    X = rng.standard_normal((n, args.dim)).astype(np.float64)
    X += rng.standard_normal((args.speakers, args.dim)).repeat(per_group * len(cats), 0)  # speaker offsets
    for c in cats[1:]:
        X[emo == c] += strength[emo == c, None] * directions[c]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"utterances": n, "dim": args.dim, "speakers": args.speakers, "per_group": per_group,
              "pairs_per_emotion": args.speakers * per_group * per_group,
              "dense_pairs_gb_per_emotion": round(args.speakers * per_group * per_group * args.dim * 8 / 1e9, 1),
              "rss_after_data_mb": round(base_rss)}
    for per in ("emotion", "speaker_emotion"):
        t = time.perf_counter()
        lab = StrengthLabeler(per=per).fit(X, spk, emo)
        fit_s = time.perf_counter() - t
        st = lab.strengths(X, spk, emo)
        e = emo != "neutral"
        from keras_ser.training.metrics import spearman

        result[per] = {"fit_s": round(fit_s, 1), "functions": len(lab.functions),
                       "srcc_vs_truth": round(spearman(st[e], strength[e]), 3),
                       "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        print(per, result[per], flush=True)
    result.update(cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
    from keras_ser.utils import report

    report(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
