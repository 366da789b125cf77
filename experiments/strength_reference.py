"""The functionals reference for StrengthNet's strength, and its late fusion with StrengthNet.

    python experiments/strength_reference.py strengthnet/ravdess_recipe data.normalization=speaker \
        --folds-file runs/ref/ravdess_strength4_kfold5_train/folds.json --runs runs/strength_reference \
        --fuse runs/ravdess_strength4_speaker/strengthnet_recipe_speaker \
        --out docs/results/ravdess_strength4_strength_reference.json

What a practitioner tries first for a strength score, beside StrengthNet: the same ranking labels
(`strength_labels`, the run's `strength.*` settings) regressed from the same openSMILE
functionals they are made from (`strength.feature_set`, IS09) by ridge regression. The features
are standardised as the run's `data.normalization` says (`speaker`: each speaker's own mean and
variance over all of that speaker's utterances, the test speakers' unlabelled audio included,
then the fold's training statistics; `train`: the fold's training statistics; the same
`utterance_features.Functionals` that gives StrengthNet its `data.functionals` input). Per outer
fold of `--folds-file` the ridge penalty is chosen on `--inner-folds` inner folds of the fold's
training and development speakers (`recipe_search.inner_folds`; never its test speakers), by
`--select-metric`: the SRCC with the ranking labels (default: the training target; the corpus's
intensity annotation is then used for nothing but the score), or the intensity AUC on the inner
folds (RAVDESS's normal / strong annotation of the training speakers). The model is then fitted on
all of the fold's training and development utterances and scored on its test speakers.
`--features frames`: instead of the functionals, the run's own input (its records: StrengthNet's
log-mel frames, silence trimmed) pooled per utterance (`pooled_frames`), standardised the same way:
does StrengthNet's input hold what the functionals give a linear model?

Each fold writes `<runs>/folds/<fold>/test_predictions.csv` (utterance_id, corpus, speaker,
emotion, intensity, strength_label, predicted_strength) and `<runs>/metrics.json`.

`--fuse ROW`: a `seeds_table.py` row folder of StrengthNet runs on the same folds (`seed<k>/`), or
one run folder. For each seed and fold the two predicted strengths of the same test utterances
(identical folds: otherwise an error) are averaged (`--weight` on StrengthNet's, 0.5: nothing
chosen on the test folds), each first standardised over the fold's test utterances (`--scale
zscore`: unlabelled, so that neither's spread decides the order; `raw`: as they are), and the
intensity AUC and the SRCC with the labels (and the MAE, where the fusion is on the labels' scale)
are reported for StrengthNet alone and for the fusion: per seed, per fold, and mean ± sd over seeds.

`--ensemble` (with `--fuse`): the row's seeds as one model, per fold the mean of their predicted
strengths, each standardised over the fold's test utterances as above (unlabelled) — for all the
seeds together and, with three or more, for each set of all but one — alone and fused with the
reference. A diagnostic of how much of StrengthNet's score is the seed's noise (an ensemble of N
seeds costs N trainings): the sets of all but one share seeds, so their spread is not an sd over
independent ensembles.
"""

import argparse
import glob
import itertools
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ALPHAS = (1.0, 10.0, 100.0, 1e3, 3e3, 1e4, 3e4, 1e5, 1e6)


def scores(strong, labels, predicted):
    """`{mae, srcc, intensity_auc, n}` of `predicted` against the ranking `labels`, and the AUC of
    the normal (False) / strong (True) annotation `strong` (NaN where unknown) from `predicted`."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from keras_ser.training import metrics as M

    strong = np.asarray(strong, float)
    known = np.isfinite(strong)
    out = {"mae": float(np.mean(np.abs(labels - predicted))), "srcc": M.spearman(labels, predicted),
           "n": int(len(labels))}
    if known.any() and 0 < strong[known].sum() < known.sum():
        out["intensity_auc"] = float(roc_auc_score(strong[known] == 1.0, predicted[known]))
    return out


def ridge_predictions(Z, y, train, test, alpha):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha).fit(Z[train], y[train]).predict(Z[test])


def pooled_frames(cfg, manifest):
    """The run's own input pooled per utterance, as `utterance_features.Functionals` gives the
    functionals (`.fold(ids)`, the same standardisation): per band of the run's records
    (`data.frontend`, silence trimmed as `data.trim_silence` says) the mean, standard deviation,
    10th and 90th percentile over the frames and the standard deviation of the frame-to-frame
    difference (`cross_corpus_input_probe.pooled`: 400 numbers for StrengthNet's 80 bands)."""
    import numpy as np
    from cross_corpus_input_probe import pooled

    from keras_ser.training import data
    from keras_ser.training import utterance_features as F

    rs = data.prepare_records(cfg, manifest)
    vectors = {}
    for ex in rs.dataset(rs.files(), batch_size=None):
        n = int(ex["num_frames"])
        vectors[ex["utterance_id"].numpy().decode()] = pooled(ex["features"].numpy()[:n].astype(np.float64))
    missing = [u for u in manifest["utterance_id"] if u not in vectors]
    if missing:
        raise SystemExit(f"strength_reference: {len(missing)} utterances have no record (e.g. {missing[0]})")
    return F.Functionals(cfg, manifest, X=np.stack([vectors[u] for u in manifest["utterance_id"]]))


def reference(cfg, folds_file, runs, inner_k, select_metric, alphas=ALPHAS, features="functionals"):
    """Fit and score the reference on every fold; write its run folder; return its metrics."""
    import numpy as np
    from recipe_search import inner_folds

    from keras_ser.training import data
    from keras_ser.training import metrics as M
    from keras_ser.training import strengthnet as S
    from keras_ser.training import utterance_features as F
    from keras_ser.utils import read_json, write_csv, write_json

    manifest = data.load_manifest(cfg)
    label_names = list(cfg.data.emotions)
    strengths, _, info = S.strength_labels(cfg, manifest, runs)
    table = S.label_table(cfg, manifest, strengths, label_names)
    folds = data.folds_from_file(folds_file, table)
    feats = (F.Functionals(_with_functionals(cfg), manifest) if features == "functionals"
             else pooled_frames(cfg, manifest))
    inner = read_json(inner_folds(folds_file, table, inner_k, os.path.join(runs, "inner_folds.json")))["folds"]
    y = table["strength_label"].to_numpy(float)
    strong = S.strong_column(table["intensity"])
    at = {u: i for i, u in enumerate(table.index)}
    results = []
    for fold in folds:
        pool = fold.train + fold.dev
        _, z = feats.fold(pool)
        Z = np.stack([z[u] for u in table.index])
        own = []  # this fold's inner folds, each standardised with its own training statistics
        for f in inner:
            if f["name"].startswith(f"{fold.name}-inner"):
                _, zi = feats.fold(f["train"])
                own.append((np.stack([zi[u] for u in table.index]), [at[u] for u in f["train"]],
                            [at[u] for u in f["test"]]))
        per_alpha = {}
        for alpha in alphas:
            parts = [scores(strong[te], y[te], ridge_predictions(Zi, y, tr, te, alpha)) for Zi, tr, te in own]
            per_alpha[alpha] = {k: float(np.mean([p[k] for p in parts])) for k in ("srcc", "mae", "intensity_auc")
                                if all(k in p for p in parts)}
        chosen = max(alphas, key=lambda a: per_alpha[a].get(select_metric, -np.inf))
        train, test = [at[u] for u in pool], [at[u] for u in fold.test]
        pred = ridge_predictions(Z, y, train, test, chosen)
        res = {"fold": fold.name, "alpha": chosen, "inner": {f"{a:g}": s for a, s in per_alpha.items()},
               "overall": scores(strong[test], y[test], pred),
               "labels": scores(strong[test], y[test], y[test]),
               # the labels' own intensity AUC on the fold's training speakers: a choice between label
               # settings (strength.per, ...) can be made there, never on the test speakers
               "labels_training": scores(strong[train], y[train], y[train]),
               "overall_regression": M.regression_metrics(y[test], pred)}
        rows = table.iloc[test][["utterance_id", "corpus", "speaker", "emotion", "intensity"]].assign(
            strength_label=y[test], predicted_strength=pred)
        fold_dir = os.path.join(runs, "folds", fold.name)
        os.makedirs(fold_dir, exist_ok=True)
        write_csv(rows, os.path.join(fold_dir, "test_predictions.csv"), index=False, float_format="%.6g")
        results.append(res)
        o = res["overall"]
        print(f"{fold.name}: alpha {chosen:g} (inner {select_metric} {per_alpha[chosen].get(select_metric, float('nan')):.3f}); "
              f"test SRCC {o['srcc']:.3f} MAE {o['mae']:.3f} intensity AUC {o.get('intensity_auc', float('nan')):.3f} "
              f"(the labels' {res['labels'].get('intensity_auc', float('nan')):.3f})")
    mean = {k: float(np.mean([r["overall"][k] for r in results])) for k in ("srcc", "mae", "intensity_auc")
            if all(k in r["overall"] for r in results)}
    for key in ("labels", "labels_training"):
        mean[f"{key}_intensity_auc"] = float(np.mean([r[key].get("intensity_auc", np.nan) for r in results]))
    doc = {"system": "strength_reference", "regressor": "ridge", "features": features,
           "feature_set": cfg.strength.feature_set if features == "functionals" else f"pooled {cfg.data.frontend}",
           "dim": int(feats.dim), "normalization": cfg.data.normalization, "select_metric": select_metric,
           "inner_folds": inner_k,
           "alphas": list(alphas), "folds_file": os.path.abspath(folds_file), "strength_labels": info,
           "folds": results, "mean": mean}
    write_json(doc, os.path.join(runs, "metrics.json"))
    return doc


def _with_functionals(cfg):
    import dataclasses

    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, functionals=cfg.strength.feature_set))


def read_predictions(path):
    import pandas as pd

    if not os.path.exists(path):
        raise SystemExit(f"strength_reference: {path} is missing (an unfinished run?)")
    return pd.read_csv(path).set_index("utterance_id")


def zscore(v):
    """`v` standardised over its own values (a constant stays 0)."""
    sd = v.std()
    return (v - v.mean()) / (sd if sd > 0 else 1.0)


def fuse_strengths(a, b, weight, scale="zscore"):
    """`weight * a + (1 - weight) * b`; with `scale="zscore"` each first standardised over the
    utterances given (a fold's test utterances: unlabelled, as per-speaker statistics are), so that
    the spread of neither decides the order (a heavily penalised ridge predicts within a narrow band
    around the mean, StrengthNet within another)."""

    if scale == "zscore":
        a, b = zscore(a), zscore(b)
    elif scale != "raw":
        raise ValueError(f"fuse_strengths: scale must be zscore or raw, got {scale!r}")
    return weight * a + (1 - weight) * b


def fuse(row, runs, weight, scale="zscore", ensemble=False):
    """StrengthNet's runs in `row` fused with the reference's predictions in `runs`: per seed and fold
    (and with `ensemble`, the seeds' standardised strengths averaged: `seed_ensembles`)."""
    import numpy as np
    from late_fusion import seed_runs

    from keras_ser.training import strengthnet as S
    from keras_ser.training.metrics import mean_sd

    seeds, nets, refs = {}, {}, {}
    for seed, run in sorted(seed_runs(row).items(), key=lambda kv: (kv[0] is None, kv[0])):
        fold_dirs = sorted(glob.glob(os.path.join(run, "folds", "*")))
        if not fold_dirs:
            raise SystemExit(f"strength_reference: {run} has no folds")
        per_fold = []
        for fd in fold_dirs:
            name = os.path.basename(fd)
            a = read_predictions(os.path.join(fd, "test_predictions.csv"))
            b = read_predictions(os.path.join(runs, "folds", name, "test_predictions.csv"))
            if set(a.index) != set(b.index):
                raise SystemExit(f"strength_reference: fold {name}: {run} and the reference score different test "
                                 f"utterances ({len(set(a.index) ^ set(b.index))} differ): not identical folds")
            b = b.loc[a.index]
            if not np.allclose(a["strength_label"], b["strength_label"], atol=1e-5):
                raise SystemExit(f"strength_reference: fold {name}: {run}'s strength labels differ from the "
                                 "reference's: not the same ranking labels")
            strong = S.strong_column(b["intensity"])
            y = b["strength_label"].to_numpy(float)
            net = a["predicted_strength"].to_numpy(float)
            nets.setdefault(seed, {})[name] = a["predicted_strength"]
            refs[name] = (strong, y, b["predicted_strength"].to_numpy(float), list(b.index))
            fused = fuse_strengths(net, b["predicted_strength"].to_numpy(float), weight, scale)
            f = scores(strong, y, fused)
            if scale != "raw":  # standardised strengths are off the labels' scale
                del f["mae"]
            per_fold.append({"fold": name, "strengthnet": scores(strong, y, net), "fused": f,
                             "emotion_wa": float(np.mean(a["predicted_emotion"] == a["emotion"]))})
        seeds[seed] = fold_means(per_fold)
        seeds[seed]["emotion_wa"] = float(np.mean([f["emotion_wa"] for f in per_fold]))
        seeds[seed]["folds"] = per_fold
        s = seeds[seed]
        print(f"seed {seed}: StrengthNet intensity AUC {s['strengthnet']['intensity_auc']:.3f}, fused "
              f"{s['fused']['intensity_auc']:.3f} (SRCC with the labels {s['strengthnet']['srcc']:.3f} → "
              f"{s['fused']['srcc']:.3f})")
    first = next(iter(seeds.values()))
    summary = {k: {m: mean_sd([s[k][m] for s in seeds.values()]) for m in first[k]} for k in ("strengthnet", "fused")}
    out = {"row": os.path.abspath(row), "weight": weight, "scale": scale, "seeds": len(seeds),
           "per_seed": [{"seed": k, **v} for k, v in seeds.items()], "summary": summary}
    if ensemble:
        out["ensemble"] = seed_ensembles(nets, refs, weight)
    return out


def fold_means(per_fold):
    """The mean over folds of each score (but `n`) that every fold has, for StrengthNet and the fusion."""
    import numpy as np

    return {k: {m: float(np.mean([f[k][m] for f in per_fold])) for m in per_fold[0][k]
                if m != "n" and all(m in f[k] for f in per_fold)} for k in ("strengthnet", "fused")}


def seed_ensembles(nets, refs, weight):
    """Per set of seeds (all of them; with three or more, also each set of all but one): per fold the
    mean of the seeds' predicted strengths, each z-scored over the fold's test utterances, scored alone
    and fused (z-scored, `weight` on the ensemble) with the reference. `nets[seed][fold]`: a seed's
    strengths (a Series by utterance id); `refs[fold] = (strong, labels, reference's strengths, utterance ids)`."""
    import numpy as np

    folds = sorted(refs)
    incomplete = [s for s, by_fold in nets.items() if sorted(by_fold) != folds]
    if len(nets) < 2 or incomplete:
        raise SystemExit(f"strength_reference: --ensemble needs two or more seeds scored on every fold "
                         f"({len(nets)} seed(s); without every fold: {incomplete or 'none'})")
    seeds = sorted(nets, key=lambda k: (k is None, k))
    sets = [tuple(seeds)] + (list(itertools.combinations(seeds, len(seeds) - 1)) if len(seeds) >= 3 else [])
    out = []
    for chosen in sets:
        per_fold = []
        for name in folds:
            strong, y, ref, ids = refs[name]
            mean = np.mean([zscore(nets[s][name].loc[ids].to_numpy(float)) for s in chosen], axis=0)
            alone, fused = scores(strong, y, mean), scores(strong, y, fuse_strengths(mean, ref, weight))
            del alone["mae"], fused["mae"]  # standardised: off the labels' scale
            per_fold.append({"fold": name, "strengthnet": alone, "fused": fused})
        res = fold_means(per_fold)
        out.append({"seeds": list(chosen), **res, "folds": per_fold})
        print(f"seeds {'+'.join(map(str, chosen))} as one model: intensity AUC {res['strengthnet']['intensity_auc']:.3f}"
              f", fused {res['fused']['intensity_auc']:.3f} (SRCC with the labels {res['strengthnet']['srcc']:.3f})")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="the StrengthNet preset whose labels, corpus and normalisation to use")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the preset")
    ap.add_argument("--folds-file", required=True, help="the folds.json every row uses")
    ap.add_argument("--runs", required=True, help="the reference's run folder")
    ap.add_argument("--features", choices=("functionals", "frames"), default="functionals",
                    help="the ranking labels' own functionals (strength.feature_set), or the run's own input "
                         "frames pooled per utterance (what StrengthNet sees)")
    ap.add_argument("--inner-folds", type=int, default=3)
    ap.add_argument("--select-metric", choices=("srcc", "intensity_auc"), default="srcc")
    ap.add_argument("--fuse", default=None, help="a row folder (seed<k>/ runs) or run folder of StrengthNet")
    ap.add_argument("--weight", type=float, default=0.5, help="StrengthNet's weight in the fusion")
    ap.add_argument("--scale", choices=("zscore", "raw"), default="zscore",
                    help="fuse the two strengths standardised over each fold's test utterances, or as they are")
    ap.add_argument("--ensemble", action="store_true",
                    help="with --fuse: the row's seeds averaged as one model (all, and each set of all but one)")
    ap.add_argument("--out", required=True, help="the JSON to write")
    args = ap.parse_args(argv)
    if args.ensemble and not args.fuse:
        ap.error("--ensemble needs --fuse ROW (the seeds to average)")
    if args.inner_folds < 2:
        ap.error("--inner-folds must be at least 2")
    if not 0.0 <= args.weight <= 1.0:
        ap.error("--weight must be in [0, 1]")

    from keras_ser.config import load_config
    from keras_ser.utils import write_json

    cfg = load_config(args.config, args.overrides)
    if cfg.system != "strengthnet":
        ap.error(f"{args.config}: a StrengthNet preset is needed (its strength labels), got system {cfg.system}")
    doc = reference(cfg, args.folds_file, args.runs, args.inner_folds, args.select_metric, features=args.features)
    doc["command"] = " ".join(sys.argv)
    if args.fuse:
        doc["fusion"] = fuse(args.fuse, args.runs, args.weight, args.scale, ensemble=args.ensemble)
    write_json(doc, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
