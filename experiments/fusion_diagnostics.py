"""Why a late-fusion hybrid gains what it gains: how often two systems agree, how their errors
correlate, how confident each is, and what the hybrid would score with the first system's
probabilities softened or sharpened by a temperature.

    python experiments/fusion_diagnostics.py --out docs/results/fusion_diagnostics_ravdess4.json \
        --pair "cnn_pool=runs/ravdess4/cnn_pool runs/ravdess4/reference" \
        --pair "cnn_pool_channel=runs/ravdess4/cnn_pool_channel runs/ravdess4/reference"

Each `--pair NAME=A B` names two folders as `experiments/late_fusion.py` reads them (row folders
with `seed<k>/` runs, or run folders; `b` may be a deterministic reference's single run) scored
on identical folds. Per seed and fold, on the test utterances: WA of `a`, of `b` and of their
hybrid (the mean of the probabilities, as `late_fusion.py`), the share of utterances on which
the two decide alike, the correlation of their errors (1 where a system is wrong), each
system's mean top probability (its confidence), and the hybrid's WA when `a`'s probabilities
are taken to the power `1 / T` and renormalised, for each `--temperatures` T (T = 1: the
hybrid as reported). The numbers are means over folds, then over seeds.

`--pair "NAME=A B @CORPUS"` reads each fold's predictions on the unseen corpus CORPUS instead
(`folds/<fold>/unseen/<CORPUS>/predictions.csv`, `data.eval_corpora`): a cross-corpus cell.

The temperature curve is read on the **test folds**: it explains a gain, it does not choose a
temperature (`late_fusion.py --calibrate-a` fits one without the test fold).
"""

import argparse
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def fold_diagnostics(path_a, path_b, temperatures):
    """The diagnostics of one fold's two `predictions.csv` (same utterances; else an error)."""
    import numpy as np
    from late_fusion import read_pair, soften

    a, b = read_pair(path_a, path_b, "one fold", prog="fusion_diagnostics")
    if a.empty:  # an unseen corpus of unlabelled audio: predicted, nothing to score
        raise SystemExit(f"fusion_diagnostics: {path_a}: none of its utterances carries one of the model's labels "
                         "(unlabelled audio): nothing to diagnose")
    cols = [c for c in a.columns if c.startswith("score_")]
    if not cols or cols != [c for c in b.columns if c.startswith("score_")]:
        raise SystemExit(f"fusion_diagnostics: {path_a} and {path_b} do not give the same classes' probabilities")
    names = np.array([c[len("score_"):] for c in cols])
    pa, pb, y = a[cols].to_numpy(float), b[cols].to_numpy(float), a["emotion"].to_numpy(str)
    right_a, right_b = names[pa.argmax(1)] == y, names[pb.argmax(1)] == y
    wrong = np.stack([~right_a, ~right_b]).astype(float)
    corr = float(np.corrcoef(wrong)[0, 1]) if wrong.std(axis=1).min() > 0 else float("nan")
    return {"wa_a": float(right_a.mean()), "wa_b": float(right_b.mean()),
            "agree": float((pa.argmax(1) == pb.argmax(1)).mean()), "error_correlation": corr,
            "confidence_a": float(pa.max(1).mean()), "confidence_b": float(pb.max(1).mean()),
            "hybrid_wa": {str(t): float((names[(soften(pa, t) + pb).argmax(1)] == y).mean()) for t in temperatures}}


def pair_diagnostics(folder_a, folder_b, temperatures, unseen=None):
    """`{"per_seed": [...], "mean": {...}}` of two row (or run) folders on identical folds (on
    the unseen corpus `unseen` of each fold, when given)."""
    import numpy as np
    from late_fusion import fold_predictions, seed_runs

    runs_a, runs_b = seed_runs(folder_a), seed_runs(folder_b)
    per_seed = []
    for seed, run_a in sorted(runs_a.items(), key=lambda kv: (kv[0] is None, kv[0])):
        run_b = runs_b.get(seed) or (next(iter(runs_b.values())) if len(runs_b) == 1 else None)
        if run_b is None:
            raise SystemExit(f"fusion_diagnostics: {folder_b} has no seed {seed} (and more than one run)")
        folds = sorted(glob.glob(os.path.join(run_a, "folds", "*")))
        if not folds:
            raise SystemExit(f"fusion_diagnostics: {run_a} has no folds/")
        def where(fold_dir):
            return (os.path.join(fold_dir, "unseen", unseen, "predictions.csv") if unseen
                    else fold_predictions(fold_dir))

        rows = [fold_diagnostics(where(f), where(os.path.join(run_b, "folds", os.path.basename(f))), temperatures)
                for f in folds]
        mean = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0] if k != "hybrid_wa"}
        mean["hybrid_wa"] = {t: float(np.mean([r["hybrid_wa"][t] for r in rows])) for t in rows[0]["hybrid_wa"]}
        per_seed.append({"seed": seed, "folds": len(rows), **mean})
    keys = [k for k in per_seed[0] if k not in ("seed", "folds", "hybrid_wa")]
    mean = {k: float(np.mean([s[k] for s in per_seed])) for k in keys}
    mean["hybrid_wa"] = {t: float(np.mean([s["hybrid_wa"][t] for s in per_seed])) for t in per_seed[0]["hybrid_wa"]}
    return {"a": folder_a, "b": folder_b, "unseen": unseen, "seeds": len(per_seed), "per_seed": per_seed, "mean": mean}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", action="append", required=True,
                    help="NAME=A B [@CORPUS] (two row or run folders; @CORPUS: on that unseen corpus)")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 3.0, 5.0])
    ap.add_argument("--out", default=None, help="a JSON to write the diagnostics to")
    args = ap.parse_args(argv)
    if any(t <= 0 for t in args.temperatures):
        ap.error("--temperatures must be > 0")
    out = {"about": "experiments/fusion_diagnostics.py: test-fold diagnostics of late-fusion pairs "
                    "(an explanation, not a choice)", "pairs": {}}
    for item in args.pair:
        name, _, folders = item.partition("=")
        parts = folders.split()
        unseen = parts.pop()[1:] if parts and parts[-1].startswith("@") else None
        if not name or len(parts) != 2 or unseen == "":
            ap.error(f"--pair {item!r} is not NAME=A B [@CORPUS]")
        d = pair_diagnostics(*parts, args.temperatures, unseen)
        out["pairs"][name] = d
        m = d["mean"]
        curve = "  ".join(f"T={t}: {100 * v:.1f}" for t, v in m["hybrid_wa"].items())
        print(f"{name}: WA a {100 * m['wa_a']:.1f}, b {100 * m['wa_b']:.1f}; agree {m['agree']:.3f}, "
              f"error correlation {m['error_correlation']:.3f}, confidence a {m['confidence_a']:.3f}, "
              f"b {m['confidence_b']:.3f}; hybrid WA {curve} ({d['seeds']} seed(s))", flush=True)
    if args.out:
        from keras_ser.utils import write_json

        write_json(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
