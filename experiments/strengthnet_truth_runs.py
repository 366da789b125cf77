"""StrengthNet runs on a synthetic corpus (whose manifest holds the true strength), read back as
one table per epoch count: SRCC against the truth over all emotional test utterances and over
its subsets, the pure utterances per emotion, how many of the pure ones the emotion head puts in
their own emotion, a per-emotion linear map's bound, and the last epoch's training numbers.

    python experiments/strengthnet_truth_runs.py docs/results/strengthnet_synthetic72_truth_speaker_epochs.json \
        runs/sn72/truth_recipe_speaker_e40/seed2 [RUN ...] [--about TEXT] [--command TEXT]

Each RUN is a finished `keras_ser-train strengthnet/...` output folder with one fold (the
preset's split). Its epoch count and seed come from its `config.yaml`. When the table exists
already, the runs are added to it: the runs it holds stay (their folders may be gone, on another
session's machine) and each touched epoch count's mean ± sd (sd with ddof 1) is recomputed over
its runs. A seed that the table holds for that epoch count already is refused unless `--replace`
is given; so are a run folder that is unfinished or has several folds, and a run whose system,
`data.normalization`, `strength.labels` or `train.select` differs from the table's runs (those that recorded
them: each run keeps its own). Nothing is written when anything is refused.

Per run:
    srcc_vs_truth[_pure, _blend, _change], strength_mae, emotion_wa
        the fold's own metrics (folds/<fold>/metrics.json); the pure SRCC is recomputed from the
        fold's test_predictions.csv and must agree with it (a check that the subset read is the one
        scored)
    pure_per_emotion
        SRCC against the truth within each emotion, pure utterances only
    pure_emotion_head_right, pure_n
        pure utterances whose predicted emotion is their own, of all pure ones
    pure_per_emotion_linear_map_test_fitted
        the pure SRCC after mapping each emotion's predictions linearly onto the truth by a least
        squares fit on those same test utterances: an upper bound of what any per-emotion
        calibration of the strength could give, not a result
    train_strength_mae_last_epoch, train_emotion_acc_last_epoch
        the last row of the stage's history.csv
    seconds
        the run's fold seconds (metrics.json `fold_seconds`: the invocation that finished the fold)
"""

import argparse
import os
import sys

import numpy as np
import pandas as pd
import yaml

from keras_ser.training.metrics import mean_sd, spearman
from keras_ser.utils import read_json, write_json

SAME = {"system": ("system", None), "normalization": ("data", "normalization"), "labels": ("strength", "labels"),
        "select": ("train", "select")}  # what every run of a table shares (of the runs that recorded it)
MEANS = ("srcc_vs_truth", "srcc_vs_truth_pure", "srcc_vs_truth_blend", "srcc_vs_truth_change", "strength_mae",
         "emotion_wa", "pure_per_emotion_linear_map_test_fitted", "train_strength_mae_last_epoch")


def linear_map_bound(pure):
    """The SRCC over `pure` (columns emotion, true_strength, predicted_strength) once each emotion's
    predictions are replaced by their least-squares linear fit onto that emotion's truth."""
    mapped = pure["predicted_strength"].to_numpy(float).copy()
    for _, part in pure.groupby("emotion"):
        idx = pure.index.get_indexer(part.index)
        x, y = part["predicted_strength"].to_numpy(float), part["true_strength"].to_numpy(float)
        if len(part) < 2 or np.ptp(x) == 0:
            mapped[idx] = y.mean()
            continue
        slope, intercept = np.polyfit(x, y, 1)
        mapped[idx] = slope * x + intercept
    return spearman(pure["true_strength"].to_numpy(float), mapped)


def read_run(run):
    """One finished run folder → `(epochs, record)`. Raises ValueError naming the folder."""
    summary_path = os.path.join(run, "metrics.json")
    if not os.path.exists(summary_path):
        raise ValueError(f"{run}: no metrics.json (the run has not finished)")
    summary = read_json(summary_path)
    if summary.get("folds_run") != 1:
        raise ValueError(f"{run}: {summary.get('folds_run')} folds; this reads runs of one fold (the preset's split)")
    with open(os.path.join(run, "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    fold = summary["folds"][0]
    if "srcc_vs_truth_pure" not in fold:
        raise ValueError(f"{run}: no SRCC against the true strength (not a synthetic corpus with pure utterances?)")
    fold_dir = os.path.join(run, "folds", fold["fold"])
    pred = pd.read_csv(os.path.join(fold_dir, "test_predictions.csv"))
    pure = pred[pred["pure"].astype(bool) & np.isfinite(pred["true_strength"])].reset_index(drop=True)
    recomputed = spearman(pure["true_strength"], pure["predicted_strength"])
    if abs(recomputed - fold["srcc_vs_truth_pure"]) > 1e-4:
        raise ValueError(f"{run}: the pure SRCC of test_predictions.csv ({recomputed:.4f}) is not the fold's "
                         f"({fold['srcc_vs_truth_pure']:.4f})")
    history = pd.read_csv(os.path.join(fold_dir, "strengthnet", "history.csv"))
    last = history.iloc[-1]
    record = {
        "run": os.path.normpath(run),
        "seed": int(cfg["seed"]),
        **{key: cfg.get(section) if name is None else cfg.get(section, {}).get(name) for key, (section, name) in SAME.items()},
        **{k: fold[k] for k in ("srcc_vs_truth", "srcc_vs_truth_pure", "srcc_vs_truth_blend", "srcc_vs_truth_change")
           if k in fold},
        "strength_mae": fold["overall"]["mae"],
        "emotion_wa": fold["emotion"]["wa"],
        "pure_per_emotion": {e: spearman(p["true_strength"], p["predicted_strength"])
                             for e, p in pure.groupby("emotion") if len(p) > 2},
        "pure_emotion_head_right": int((pure["predicted_emotion"] == pure["emotion"]).sum()),
        "pure_n": int(len(pure)),
        "pure_per_emotion_linear_map_test_fitted": linear_map_bound(pure),
        "train_strength_mae_last_epoch": float(last["strength_mae"]),
        "train_emotion_acc_last_epoch": float(last["emotion_acc"]),
        "seconds": summary.get("fold_seconds"),
    }
    return int(cfg["train"]["epochs"]), record


def group(runs):
    """`{"seeds", "mean", "runs"}` of one epoch count's runs (sorted by seed)."""
    runs = sorted(runs, key=lambda r: r["seed"])
    mean = {}
    for key in MEANS:
        values = [r[key] for r in runs if r.get(key) is not None]
        if len(values) == len(runs):
            mean[key] = {k: round(v, 4) for k, v in mean_sd(values).items() if k != "n"}
    return {"seeds": len(runs), "mean": mean, "runs": runs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", help="the JSON to write (runs are added to it when it exists)")
    ap.add_argument("runs", nargs="+", help="finished run folders")
    ap.add_argument("--about", help="the table's description (kept from the existing table when not given)")
    ap.add_argument("--command", help="the command the runs were trained with (likewise)")
    ap.add_argument("--replace", action="store_true", help="a run replaces the table's run of the same epochs and seed")
    args = ap.parse_args(argv)
    table = read_json(args.table) if os.path.exists(args.table) else {"epochs": {}}
    try:
        new = [read_run(run) for run in args.runs]
    except (ValueError, OSError, KeyError) as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    epochs = {k: list(v["runs"]) for k, v in table["epochs"].items()}
    for e, record in new:
        runs = epochs.setdefault(str(e), [])
        same = [r for r in runs if r["seed"] == record["seed"]]
        if same and not args.replace:
            print(f"refused: the table holds seed {record['seed']} at {e} epochs already ({same[0]['run']}); "
                  f"--replace replaces it", file=sys.stderr)
            return 2
        others = [r for k, rs in epochs.items() for r in rs if (k, r["seed"]) != (str(e), record["seed"])]
        for key in SAME:
            differ = sorted({str(r[key]) for r in others if key in r} - {str(record[key])})
            if differ:
                print(f"refused: {record['run']} has {key} {record[key]!r}, the table's runs {', '.join(differ)}",
                      file=sys.stderr)
                return 2
        runs[:] = [r for r in runs if r["seed"] != record["seed"]] + [record]
    touched = {str(e) for e, _ in new}
    out = {"about": args.about or table.get("about", ""), "command": args.command or table.get("command", ""),
           "epochs": {k: group(v) if k in touched else table["epochs"][k]
                      for k, v in sorted(epochs.items(), key=lambda kv: int(kv[0]))}}
    write_json(out, args.table)
    for k in sorted(touched, key=int):
        m = out["epochs"][k]["mean"]
        print(f"{k} epochs, {out['epochs'][k]['seeds']} seeds: SRCC vs truth all "
              f"{m['srcc_vs_truth']['mean']:.3f} ± {m['srcc_vs_truth']['sd']:.3f}, pure "
              f"{m['srcc_vs_truth_pure']['mean']:.3f} ± {m['srcc_vs_truth_pure']['sd']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
