"""Rows of a results table, each over several seeds, on identical folds.

    python experiments/seeds_table.py --out docs/results/ravdess4.json --runs /work/runs/ravdess4 \
        --folds-file runs/functionals-ravdess/folds.json --seeds 0 1 2 \
        --row "reference=functionals/ravdess" \
        --row "fg_cme=fg_cme/ravdess" \
        --row "cnn_pool=fg_cme/ravdess_recipe data.normalization=speaker"

A row is `name=preset [key=value ...]` (shell quoting inside: `'data.emotions=[a, b]'`). Every (row, seed) is one `keras_ser-train` run into
`<runs>/<name>/seed<k>/` with `seed=k` (the model's initialisation and the data order; the folds
come from `--folds-file`, the same for every row and seed), resumed when interrupted. A row's
numbers are the mean ± sd over its seeds of each run's mean over folds (and of its pooled WA and
UA); its per-seed and per-fold numbers are kept. The JSON is written after every run, so a
table cut short keeps what it finished; rerunning skips finished runs. A deterministic row (the
functionals reference) is run once and says so.
"""

import argparse
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DETERMINISTIC = ("functionals",)  # systems whose result does not depend on the seed
UNSEEN_SAME = ("n", "missing_labels", "normalization", "adapt")  # what an unseen corpus's seeds share


def parse_row(text, flag="--row"):
    """`NAME=PRESET [key=value ...]` (shell quoting: quote a value with spaces) → `(name, preset, overrides)`."""
    name, _, rest = text.partition("=")
    parts = shlex.split(rest)
    if not name or not parts:
        raise ValueError(f"{flag} {text!r}: expected NAME=PRESET [key=value ...]")
    return name, parts[0], parts[1:]


def headline(scores, key):
    """`scores[key]`, or StrengthNet's `emotion_<key>` (its WA / UA are the emotion head's)."""
    return scores[key] if key in scores else scores[f"emotion_{key}"]


def fold_scores(fold):
    """One fold's WA and UA (StrengthNet: its emotion head's, with its strength MAE, SRCC and,
    where the corpus has intensity codes, the normal-vs-strong AUC)."""
    if "wa" in fold:
        return {"fold": fold["fold"], "wa": fold["wa"], "ua": fold["ua"]}
    out = {"fold": fold["fold"], "wa": fold["emotion"]["wa"], "ua": fold["emotion"]["ua"],
           "mae": fold["overall"]["mae"], "srcc": fold["overall"]["srcc"]}
    if "auc" in fold.get("intensity", {}):
        out.update(intensity_auc=fold["intensity"]["auc"], intensity_labels_auc=fold["intensity"]["labels_auc"])
    return out


def ms(values):
    """`{"mean", "sd" (ddof 1; 0 for one value), "n"}` of a row's per-seed values."""
    import numpy as np

    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


def summarise(runs):
    """Mean ± sd over the seeds' run means (WA, UA, macro-F1, pooled WA/UA, and any other metric
    the runs average over their folds, e.g. StrengthNet's SRCC and intensity AUC)."""
    # Every metric the runs average over their folds; StrengthNet's emotion WA / UA are its WA / UA.
    out = {k: ms([r["mean"][k]["mean"] for r in runs]) for k in runs[0]["mean"] if all(k in r["mean"] for r in runs)}
    for k in ("wa", "ua"):
        if k not in out and f"emotion_{k}" in out:
            out[k] = out[f"emotion_{k}"]
    if all("pooled" in r for r in runs):
        out["pooled_wa"] = ms([r["pooled"]["wa"] for r in runs])
        out["pooled_ua"] = ms([r["pooled"]["ua"] for r in runs])
    if all("unseen" in r for r in runs):  # data.eval_corpora: each scored unseen corpus, mean over seeds
        out["unseen"] = {name: {"wa": ms([r["unseen"][name]["mean"]["wa"]["mean"] for r in runs]),
                                "ua": ms([r["unseen"][name]["mean"]["ua"]["mean"] for r in runs]),
                                **{k: runs[0]["unseen"][name].get(k) for k in UNSEEN_SAME}}
                         for name in runs[0]["unseen"] if all("mean" in r["unseen"][name] for r in runs)}
    return out


def seed_unseen(run):
    """`{"unseen": {corpus: {"wa", "ua"}}}` of one seed's run (its fold models' mean on each
    scored unseen corpus), kept per seed so that `merge_seeds.py` can add seeds run elsewhere;
    `{}` without unseen corpora."""
    scored = {name: {"wa": u["mean"]["wa"]["mean"], "ua": u["mean"]["ua"]["mean"]}
              for name, u in run.get("unseen", {}).items() if "mean" in u}
    return {"unseen": scored} if scored else {}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--row", action="append", required=True, help="NAME=PRESET [key=value ...]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--folds-file", default=None, help="the folds.json every run uses")
    ap.add_argument("--runs", required=True, help="folder of the runs")
    ap.add_argument("--out", required=True, help="the table's JSON")
    ap.add_argument("--extra", nargs="*", default=[], help="overrides for every row")
    args = ap.parse_args(argv)
    try:
        rows = [parse_row(r) for r in args.row]
    except ValueError as exc:
        ap.error(str(exc))

    from keras_ser.config import load_config
    from keras_ser.training.runner import run
    from keras_ser.utils import read_json, write_json

    table = read_json(args.out) if os.path.exists(args.out) else {"rows": {}}
    table["folds_file"] = args.folds_file
    seeds_of = {name: args.seeds[:1] if preset.split("/")[0] in DETERMINISTIC else args.seeds
                for name, preset, _ in rows}
    for name, preset, overrides in rows:  # a row is rebuilt from this invocation's seeds: keep none out
        old, seeds = table["rows"].get(name), seeds_of[name]
        if old and (old["preset"], old["overrides"]) == (preset, overrides + args.extra) and not set(old["seeds"]) <= set(seeds):
            ap.error(f"row {name!r} of {args.out} holds seeds {old['seeds']}, which --seeds {' '.join(map(str, seeds))} "
                     f"would drop: name them too (their finished runs are read back, not retrained)")
    for name, preset, overrides in rows:
        seeds = seeds_of[name]
        runs = []
        for seed in seeds:
            extra = [f"seed={seed}", f"output_dir={os.path.join(args.runs, name, f'seed{seed}')}", "train.verbose=0"]
            if args.folds_file:
                extra.append(f"protocol.folds_file={args.folds_file}")
            cfg = load_config(preset, [*overrides, *args.extra, *extra])
            s = run(cfg)
            runs.append(s)
            table["rows"][name] = {
                "preset": preset, "overrides": overrides + args.extra, "system": s["system"],
                "normalization": cfg.data.normalization, "protocol": s["protocol"], "folds": s["folds_run"],
                "seeds": seeds[: len(runs)], "deterministic": preset.split("/")[0] in DETERMINISTIC,
                # MLEE scored on the annotators' majority, not the corpus's emotion (its in-corpus numbers only)
                **({"dominant_differs": s["dominant_differs"]} if s.get("dominant_differs", {}).get("count") else {}),
                **summarise(runs),
                "per_seed": [{"seed": sd, **{k: v["mean"] for k, v in r["mean"].items()},
                              "wa": headline(r["mean"], "wa")["mean"], "ua": headline(r["mean"], "ua")["mean"],
                              "pooled": r.get("pooled"), "seconds": r.get("fold_seconds", r.get("seconds")),
                              "per_fold": [fold_scores(f) for f in r["folds"]], **seed_unseen(r)}
                             for sd, r in zip(seeds, runs)],
            }
            table["seeds"] = sorted({sd for row in table["rows"].values() for sd in row["seeds"]})  # any row's
            write_json(table, args.out)
        r = table["rows"][name]
        auc = (f", intensity AUC {r['intensity_auc']['mean']:.3f} ± {r['intensity_auc']['sd']:.3f}"
               if "intensity_auc" in r else "")
        print(f"{name}: WA {100 * r['wa']['mean']:.1f} ± {100 * r['wa']['sd']:.1f}, "
              f"UA {100 * r['ua']['mean']:.1f} ± {100 * r['ua']['sd']:.1f}{auc} ({len(runs)} seed(s))", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
