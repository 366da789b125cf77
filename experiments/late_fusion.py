"""Late fusion of two systems scored on identical folds: the mean of their class probabilities.

    python experiments/late_fusion.py --a /work/runs/ravdess4/cnn_pool --b /work/runs/ravdess4/reference \
        --name "cnn_pool + reference" --table docs/results/ravdess4.json

`--a` and `--b` are row folders of `experiments/seeds_table.py` (`seed<k>/` runs inside) or run
folders. Each seed of `a` is fused with the same seed of `b` (or with `b`'s only run, for a
deterministic reference); per fold, the two `predictions.csv` must hold the same test
utterances (identical folds: otherwise an error), and the fused decision is the argmax of
`weight * p_a + (1 - weight) * p_b` (weight 0.5: nothing is chosen on the test folds). Both
must give probabilities (softmax networks, logistic regression), not SVM decision values.
A StrengthNet run is read through its emotion head (`test_predictions.csv`'s `score_<emotion>`).
The result is added to `--table` as a row of the same shape as `seeds_table.py`'s.

Runs scored on unseen corpora (`data.eval_corpora`: each fold's `unseen/<corpus>/predictions.csv`)
are fused there too, corpus by corpus, and the row gets `unseen` as `seeds_table.py` writes it,
so that a hybrid's cross-corpus matrix is made from the two systems' matrices
(`experiments/cross_corpus.py`): `--name` is then the training corpus, `--table` the hybrid's
matrix. An unseen corpus that only one of the runs was scored on is an error; one without any of
the model's labels (unlabelled audio: predicted, nothing to score) is left out, and said.

`--calibrate-a INNER`: before fusing, `a`'s probabilities of each outer fold are taken to the
power 1 / T and renormalised (temperature scaling), T fitted by the negative log-likelihood of
`a`'s predictions on that outer fold's inner folds (`INNER`: a folder of
`experiments/recipe_search.py --select-by inner` runs, whose folds are `<fold>-inner<j>of<m>`,
held-out training speakers of the outer fold; never its test speakers). The same T is used on the
fold's unseen corpora. A network trained to fit its labels is surer than it is right on new
speakers, and averaging then lets it over-rule the reference too often (docs/results.md, "Why
the hybrids gain").

`--unseen-only`: fuse the unseen corpora only, not the in-corpus folds: for two runs whose own
folds score different utterances (MLEE scores the annotators' majority label, so its folds on the
synthetic corpus hold the utterances with a majority, the reference's all of them) while each fold's
model meets the same unseen utterances, each scored on that corpus's emotion. The row then has no
in-corpus WA / UA (its own-folds cell is blank in a matrix), only `unseen`.

`--temperature-a T`: one temperature for `a` on every fold and unseen corpus, chosen elsewhere
(for an unseen corpus, say, on another pair of corpora; never on these test folds). The row
records it (`fusion.temperature_a`), as `keras_ser-fuse --temperature-a` builds the same model.
"""

import argparse
import glob
import os
import sys


def seed_runs(folder):
    """`{seed: run folder}` of a row folder, or `{None: folder}` for a run folder."""
    runs = {int(os.path.basename(p)[4:]): p for p in glob.glob(os.path.join(folder, "seed*"))
            if os.path.basename(p)[4:].isdigit()}
    return runs or {None: folder}


def soften(p, temperature):
    """Probabilities `p` (rows) to the power 1 / temperature, renormalised per row."""
    import numpy as np

    logp = np.log(np.clip(p, 1e-12, 1.0)) / float(temperature)
    e = np.exp(logp - logp.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(paths, label_names):
    """The temperature minimising the negative log-likelihood of the predictions in `paths`
    (`predictions.csv` files with `score_<label>` columns and the true `emotion`)."""
    import numpy as np
    import pandas as pd
    from scipy.optimize import minimize_scalar

    frames = [pd.read_csv(p) for p in paths]
    table = pd.concat(frames)
    cols = [f"score_{n}" for n in label_names]
    if not set(cols) <= set(table.columns):
        raise SystemExit(f"late_fusion: {paths[0]} has no class probabilities ({', '.join(cols)})")
    p = table[cols].to_numpy(float)
    y = np.array([label_names.index(e) for e in table["emotion"]])

    def nll(log_t):
        return -float(np.mean(np.log(np.clip(soften(p, np.exp(log_t))[np.arange(len(y)), y], 1e-12, 1.0))))

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def inner_temperatures(inner, fold_names, label_names):
    """`{outer fold: T}` fitted on the inner folds' predictions under `inner` (any seed)."""
    out = {}
    for name in fold_names:
        paths = sorted(glob.glob(os.path.join(inner, "**", "folds", f"{name}-inner*", "predictions.csv"), recursive=True))
        if not paths:
            raise SystemExit(f"late_fusion: --calibrate-a {inner}: no inner-fold predictions of outer fold {name} "
                             f"(folds/{name}-inner*/predictions.csv): run the inner folds of every outer fold")
        runs = {p.rsplit(os.sep + "folds" + os.sep, 1)[0] for p in paths}
        configs = {os.path.dirname(r) if os.path.basename(r).startswith("seed") else r for r in runs}
        if len(configs) > 1:
            raise SystemExit(f"late_fusion: --calibrate-a {inner} holds the inner runs of several configs "
                             f"({', '.join(sorted(configs))}): name the folder of the one `a` was trained with")
        out[name] = fit_temperature(paths, label_names)
    return out


def read_labelled(path):
    """A `predictions.csv`, indexed by utterance, with the rows whose `emotion` is one of its
    `score_<label>` classes: an unseen corpus's predictions also hold its unlabelled utterances
    and those of other labels (`loop.score_unseen`), which no metric counts."""
    import pandas as pd

    table = pd.read_csv(path).set_index("utterance_id")
    classes = [c[len("score_"):] for c in table.columns if c.startswith("score_")]
    return table[table["emotion"].isin(classes)] if classes else table  # none: the callers say so


def read_pair(path_a, path_b, what, prog="late_fusion"):
    """Two `predictions.csv` of the same labelled utterances (`read_labelled`), indexed by
    utterance, `b` in `a`'s order; SystemExit (prefixed `prog`) when `b` is missing or the
    utterances differ."""
    if not os.path.exists(path_b):
        raise SystemExit(f"{prog}: {path_b} is missing: the two runs' folds (or unseen corpora) differ")
    a, b = read_labelled(path_a), read_labelled(path_b)
    if set(a.index) != set(b.index):
        raise SystemExit(f"{prog}: {what}: the runs tested different utterances (not identical folds): "
                         f"different test utterances in {path_a} and {path_b}")
    return a, b.loc[a.index]


def fuse_predictions(path_a, path_b, weight, label_names, what, temperature_a=1.0):
    """Metrics of the fused decisions of two `predictions.csv` over the same utterances."""
    import numpy as np

    from keras_ser.training import metrics as M

    a, b = read_pair(path_a, path_b, what)
    cols = [f"score_{n}" for n in label_names]
    for path, table in ((path_a, a), (path_b, b)):
        if not set(cols) <= set(table.columns):
            raise SystemExit(f"late_fusion: {path} has no class probabilities ({', '.join(cols)}); "
                             "a StrengthNet run older than its score_<emotion> columns must be rerun")
    pa = a[cols].to_numpy(float)
    p = weight * (pa if temperature_a == 1.0 else soften(pa, temperature_a)) + (1 - weight) * b[cols].to_numpy()
    y = np.array([label_names.index(e) for e in a["emotion"]])
    return M.classification_metrics(y, p.argmax(1), label_names)


def unseen_names(fold_dir):
    return sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(fold_dir, "unseen", "*", "predictions.csv")))


def fold_predictions(fold_dir):
    """A fold's per-utterance predictions: `predictions.csv` (the classifiers), else StrengthNet's
    `test_predictions.csv` (its emotion head's probabilities are `score_<emotion>` there too)."""
    path = os.path.join(fold_dir, "predictions.csv")
    other = os.path.join(fold_dir, "test_predictions.csv")
    return other if not os.path.exists(path) and os.path.exists(other) else path


def fuse_run(run_a, run_b, weight, label_names, temperatures=None, unseen_only=False):
    """Per-fold metrics of the fused decisions of two runs on identical folds; each fold's
    `unseen` holds the fused metrics on each unseen corpus both runs were scored on.
    `temperatures`: `{fold: T}` for `a`'s probabilities (`soften`), 1 where absent.
    `unseen_only`: the unseen corpora only (the folds' own test parts are not read)."""
    out = []
    for fold_dir in sorted(glob.glob(os.path.join(run_a, "folds", "*"))):
        name = os.path.basename(fold_dir)
        other = os.path.join(run_b, "folds", name)
        if not os.path.isdir(other):
            raise SystemExit(f"late_fusion: {other} is missing: the two runs' folds differ")
        t = (temperatures or {}).get(name, 1.0)
        res = {"fold": name}
        if not unseen_only:
            res.update(fuse_predictions(fold_predictions(fold_dir), fold_predictions(other), weight,
                                        label_names, f"fold {name}", t))
        names = unseen_names(fold_dir)
        if names != unseen_names(other):
            raise SystemExit(f"late_fusion: fold {name}: unseen corpora {names} against {unseen_names(other)}: "
                             "both runs must be scored on the same ones")
        # a corpus without any of the model's labels (a user's unlabelled audio) has nothing to score
        unlabelled = [u for u in names if read_labelled(os.path.join(fold_dir, "unseen", u, "predictions.csv")).empty]
        if unlabelled:
            print(f"late_fusion: fold {name}: unseen {', '.join(unlabelled)}: none of the model's labels, not scored")
        names = [u for u in names if u not in unlabelled]
        if unseen_only and not names:
            raise SystemExit(f"late_fusion: --unseen-only: fold {name} of {run_a} was scored on no labelled "
                             "unseen corpus: nothing to fuse")
        if names:
            res["unseen"] = {u: fuse_predictions(os.path.join(fold_dir, "unseen", u, "predictions.csv"),
                                                 os.path.join(other, "unseen", u, "predictions.csv"), weight,
                                                 label_names, f"fold {name}, unseen {u}", t) for u in names}
        out.append(res)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--weight", type=float, default=0.5)
    ap.add_argument("--name", required=True, help="the row's name in the table")
    ap.add_argument("--table", required=True, help="a seeds_table.py JSON to add the row to")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="only these seeds of a (default: every seed<k> folder of a row folder)")
    ap.add_argument("--unseen-only", action="store_true",
                    help="fuse the unseen corpora only (the runs' own folds may score different utterances)")
    soften_a = ap.add_mutually_exclusive_group()
    soften_a.add_argument("--calibrate-a", default=None, metavar="INNER",
                          help="fit a temperature for a's probabilities per outer fold on these inner-fold runs")
    soften_a.add_argument("--temperature-a", type=float, default=None, metavar="T",
                          help="one temperature for a's probabilities, chosen elsewhere (never on these test folds)")
    args = ap.parse_args(argv)

    import numpy as np
    from seeds_table import ms

    from keras_ser.training import metrics as M
    from keras_ser.utils import read_json, write_json

    runs_a, runs_b = seed_runs(args.a), seed_runs(args.b)
    if args.seeds is not None:
        missing = sorted(set(args.seeds) - set(runs_a))
        if missing:
            ap.error(f"--seeds: {args.a} has no run of seed(s) {missing}")
        runs_a = {k: v for k, v in runs_a.items() if k in args.seeds}
    for run in list(runs_a.values()) + list(runs_b.values()):
        if not os.path.exists(os.path.join(run, "metrics.json")):
            ap.error(f"{run}: no metrics.json (an unfinished run): finish it, or fuse the finished seeds (--seeds)")
    temperatures = None
    if args.temperature_a is not None:
        if not args.temperature_a > 0:
            ap.error(f"--temperature-a {args.temperature_a}: must be > 0")
        first = next(iter(runs_a.values()))
        temperatures = {os.path.basename(f): args.temperature_a for f in glob.glob(os.path.join(first, "folds", "*"))}
    if args.calibrate_a:
        first = next(iter(runs_a.values()))
        temperatures = inner_temperatures(
            args.calibrate_a, [os.path.basename(f) for f in sorted(glob.glob(os.path.join(first, "folds", "*")))],
            read_json(os.path.join(first, "metrics.json"))["labels"])
        print("temperatures of a, fitted on inner folds: "
              + ", ".join(f"{k} {v:.2f}" for k, v in temperatures.items()), flush=True)
    per_seed = []
    for seed, run_a in sorted(runs_a.items(), key=lambda kv: (kv[0] is None, kv[0])):
        run_b = runs_b.get(seed) or next(iter(runs_b.values()))
        labels = read_json(os.path.join(run_a, "metrics.json"))["labels"]
        if sorted(read_json(os.path.join(run_b, "metrics.json"))["labels"]) != sorted(labels):
            raise SystemExit("late_fusion: the runs have different label sets")  # the order may differ: columns are named
        folds = fuse_run(run_a, run_b, args.weight, labels, temperatures, args.unseen_only)
        entry = {"seed": seed}
        if not args.unseen_only:
            entry.update(wa=float(np.mean([f["wa"] for f in folds])), ua=float(np.mean([f["ua"] for f in folds])),
                         pooled=M.pooled_metrics(np.sum([np.asarray(f["confusion"]) for f in folds], axis=0)),
                         per_fold=[{"fold": f["fold"], "wa": f["wa"], "ua": f["ua"]} for f in folds])
        if "unseen" in folds[0]:  # the mean over the folds' fused models, as a run's metrics.json
            about, missing = {}, {}
            for run in (run_a, run_b):
                for u, r in read_json(os.path.join(run, "metrics.json")).get("unseen", {}).items():
                    about.setdefault(u, []).append(r.get("normalization"))
                    missing.setdefault(u, r.get("missing_labels", []))
            entry["unseen"] = {u: {"wa": float(np.mean([f["unseen"][u]["wa"] for f in folds])),
                                   "ua": float(np.mean([f["unseen"][u]["ua"] for f in folds])),
                                   "n": int(np.sum(folds[0]["unseen"][u]["confusion"])),
                                   "normalization": "; ".join(dict.fromkeys(map(str, about.get(u, [])))),
                                   "missing_labels": missing.get(u, [])}
                               for u in folds[0]["unseen"]}
        per_seed.append(entry)

    table = read_json(args.table) if os.path.exists(args.table) else {"rows": {}}
    table["rows"][args.name] = {
        "fusion": {"a": args.a, "b": args.b, "weight": args.weight,
                   **({"calibrate_a": args.calibrate_a, "temperature_a": temperatures} if args.calibrate_a
                      else {"temperature_a": args.temperature_a} if args.temperature_a is not None else {}),
                   **({"unseen_only": True} if args.unseen_only else {})},
        "system": "late fusion", "seeds": [s["seed"] for s in per_seed], "per_seed": per_seed}
    if not args.unseen_only:
        table["rows"][args.name].update(
            wa=ms([s["wa"] for s in per_seed]), ua=ms([s["ua"] for s in per_seed]),
            pooled_wa=ms([s["pooled"]["wa"] for s in per_seed]), pooled_ua=ms([s["pooled"]["ua"] for s in per_seed]))
    if all("unseen" in s for s in per_seed):
        first = per_seed[0]["unseen"]
        table["rows"][args.name]["unseen"] = {
            u: {"wa": ms([s["unseen"][u]["wa"] for s in per_seed]), "ua": ms([s["unseen"][u]["ua"] for s in per_seed]),
                "n": first[u]["n"], "missing_labels": first[u]["missing_labels"],
                "normalization": first[u]["normalization"]} for u in first}
    write_json(table, args.table)
    r = table["rows"][args.name]
    own = (f"WA {100 * r['wa']['mean']:.1f} ± {100 * r['wa']['sd']:.1f}, UA {100 * r['ua']['mean']:.1f} ± "
           f"{100 * r['ua']['sd']:.1f}" if "wa" in r else "own folds not fused")
    print(f"{args.name}: {own} ({len(per_seed)} seed(s))"
          + "".join(f"; unseen {u} {100 * v['wa']['mean']:.1f} / {100 * v['ua']['mean']:.1f}"
                    for u, v in r.get("unseen", {}).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
