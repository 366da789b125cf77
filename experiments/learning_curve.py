"""Score against the number of training speakers: a learning curve on fixed test folds.

    python experiments/learning_curve.py --folds-file runs/ref/ravdess4_kfold5_train/folds.json \
        --corpus ravdess --root ../shared/data/ravdess --fractions 0.25 0.5 0.75 1 --seeds 0 1 2 \
        --runs runs/curve/ravdess4 --out docs/results/curve_ravdess4.json \
        --row "reference=functionals/ravdess" --row "cnn_pool=fg_cme/ravdess_recipe"

For each fraction f, a folds file derived from `--folds-file` keeps every fold's test part and
trains on a share f of the fold's training and development speakers (whole speakers, chosen at
random with the fold's index as the seed, nested: the speakers of a smaller fraction are among
those of a larger one), with no development part: the rows must choose nothing on development
data (`train.select=last`, as the recipes do, or the reference). Every row is run on every
fraction with `experiments/seeds_table.py`; `--out` holds, per row, the mean over seeds of the
mean over folds (WA, UA, with sd over seeds) against the mean number of training utterances and
speakers, and a figure beside it (`.png`). A curve still rising at f = 1 says more speakers
would help that row; two curves that converge say the gap is one of data, not of the model.
"""

import argparse
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def fraction_folds(doc, speaker_of, fraction):
    """`doc` (a folds file's content) with each fold trained on `fraction` of its training and
    development speakers (nested over fractions) and no development part."""
    folds = []
    for i, f in enumerate(doc["folds"]):
        pool = list(f["train"]) + list(f["dev"])
        speakers = sorted({speaker_of[u] for u in pool})
        order = [speakers[j] for j in np.random.default_rng(i).permutation(len(speakers))]
        keep = set(order[:max(1, math.ceil(fraction * len(speakers)))])
        folds.append({"name": f["name"], "train": [u for u in pool if speaker_of[u] in keep], "dev": [],
                      "test": list(f["test"]), "dev_from_train": False})
    return {**doc, "folds": folds, "about": f"training on {fraction:g} of each fold's training and development "
                                            "speakers, no development part (experiments/learning_curve.py)"}


def plot(curve, path):
    from matplotlib.figure import Figure

    from keras_ser.utils import save_figure

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    for name, points in curve.items():
        x = [p["train_utterances"] for p in points]
        y = np.array([100 * p["ua"]["mean"] for p in points])
        sd = np.array([100 * p["ua"]["sd"] for p in points])
        ax.errorbar(x, y, yerr=sd, marker="o", capsize=3, label=name)
    ax.set_xlabel("training utterances per fold (mean)")
    ax.set_ylabel("UA % on the test folds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds-file", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--root", default=None)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--row", action="append", required=True, help="NAME=PRESET [key=value ...]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--extra", nargs="*", default=[])
    args = ap.parse_args(argv)
    if any(not 0 < f <= 1 for f in args.fractions):
        ap.error(f"--fractions: each in (0, 1], got {args.fractions}")
    import seeds_table

    from keras_ser.corpora import load_corpus
    from keras_ser.utils import read_json, write_json

    manifest = load_corpus(args.corpus, args.root).manifest
    speaker_of = dict(zip(manifest["utterance_id"], manifest["speaker"]))
    doc = read_json(args.folds_file)
    os.makedirs(args.runs, exist_ok=True)
    curve = {}
    for fraction in sorted(args.fractions):
        tag = f"f{fraction:g}"
        derived = fraction_folds(doc, speaker_of, fraction)
        folds_file = write_json(derived, os.path.join(args.runs, f"folds_{tag}.json"))
        table_path = os.path.join(args.runs, f"table_{tag}.json")
        seeds_table.main([*(f"--row={r}" for r in args.row), "--seeds", *map(str, args.seeds), "--folds-file",
                          folds_file, "--runs", os.path.join(args.runs, tag), "--out", table_path,
                          *(["--extra", *args.extra] if args.extra else [])])
        rows = read_json(table_path)["rows"]
        utterances = float(np.mean([len(f["train"]) for f in derived["folds"]]))
        speakers = float(np.mean([len({speaker_of[u] for u in f["train"]}) for f in derived["folds"]]))
        for name, r in rows.items():
            curve.setdefault(name, []).append({"fraction": fraction, "train_utterances": round(utterances, 1),
                                               "train_speakers": speakers, "wa": r["wa"], "ua": r["ua"],
                                               "seeds": r.get("seeds"), "table": table_path})
        write_json({"folds_file": os.path.abspath(args.folds_file), "corpus": args.corpus, "rows": args.row,
                    "curve": curve}, args.out)
        plot(curve, os.path.splitext(args.out)[0] + ".png")
    for name, points in curve.items():
        print(name, " ".join(f"{p['train_utterances']:.0f}:{100 * p['wa']['mean']:.1f}/{100 * p['ua']['mean']:.1f}"
                             for p in points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
