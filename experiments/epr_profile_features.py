"""Which emotion-profile statistics help the EPR forest: re-fit the utterance forest of a
finished (or partly finished) EPR run on other statistics of the same profiles.

    python experiments/epr_profile_features.py RUN_DIR [--out docs/results/epr_profile_features.json]

RUN_DIR is a `keras_ser-train` EPR output folder (its `config.yaml` and `folds/<fold>/stage<t>/
profiles.npz`). For every fold whose `metrics.json` exists, and every stage, the forest is fitted
as the run fits it (training out-of-fold profiles and development profiles, the run's seed and
`epr.forest`) on each statistics set below, and scored on the test utterances. The `paper` set
is the run's own (`profile_statistics`); its scores must equal the run's `metrics.json`, which the
script checks, so the other rows differ only in what the forest sees. Nothing is retrained: only
NumPy and scikit-learn run (seconds).

    paper        per class: mean, std, min, max, percentiles, argmax share (keras_ser's default)
    mean         per class: mean only (the network's decision, given to a forest)
    paper+log    paper, plus mean, std, min and max of the log posteriors
    paper+delta  paper, plus the mean absolute change between consecutive segments, and the
                 means over the first and the last third of the segments
    paper+length paper, plus log(segment count): utterance length, not a profile statistic

Two reference rows come from the run's records: `network` (argmax of the mean posterior) and
`segments` (segment accuracy, WA only).

Per-class recall, pooled over the finished folds, for each stage: the network's decision (argmax
of the mean posterior) on the test utterances and on the training utterances' out-of-fold
profiles (the profiles the next stage's targets are made from), and the forest's on the test
utterances. This is where a refinery that feeds a weak network's bias back into its targets
shows: a class the networks seldom predict loses recall stage by stage.
"""

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _log_stats(p):
    lp = np.log(np.clip(p, 1e-7, 1.0))
    return np.concatenate([lp.mean(0), lp.std(0), lp.min(0), lp.max(0)])


def _delta_stats(p):
    d = np.abs(np.diff(p, axis=0)).mean(0) if len(p) > 1 else np.zeros(p.shape[1])
    third = max(1, len(p) // 3)
    return np.concatenate([d, p[:third].mean(0), p[-third:].mean(0)])


def statistic_sets(percentiles):
    from keras_ser.labels.profiles import profile_statistics

    def paper(p):
        return profile_statistics(p, percentiles)

    return {
        "paper": paper,
        "mean": lambda p: p.mean(0),
        "paper+log": lambda p: np.concatenate([paper(p), _log_stats(p)]),
        "paper+delta": lambda p: np.concatenate([paper(p), _delta_stats(p)]),
        "paper+length": lambda p: np.concatenate([paper(p), [np.log(len(p))]]),
    }


def fold_scores(cfg, fold, profiles, labels_of, label_names, sets):
    """({statistics set: forest WA/UA}, {decision: (labels, predictions)}): the second holds what
    the per-class recall pools, the test network, training out-of-fold network and test forest."""
    from keras_ser.training import metrics as M
    from keras_ser.training.epr import make_forest, network_decisions

    fit_ids = list(fold.train) + list(fold.dev)
    y_fit = [labels_of[u] for u in fit_ids]
    y_test = np.array([labels_of[u] for u in fold.test])
    scores = {}
    for name, fn in sets.items():
        forest = make_forest(cfg).fit(np.stack([fn(profiles[u]) for u in fit_ids]).astype(np.float32), y_fit)
        pred = forest.predict(np.stack([fn(profiles[u]) for u in fold.test]).astype(np.float32))
        m = M.classification_metrics(y_test, pred, label_names)
        scores[name] = {"wa": m["wa"], "ua": m["ua"]}
        if name == "paper":
            forest_pred = pred
    decisions = {
        "test network": (y_test, network_decisions([profiles[u] for u in fold.test])),
        "train network (out-of-fold)": (np.array([labels_of[u] for u in fold.train]),
                                        network_decisions([profiles[u] for u in fold.train])),
        "test forest": (y_test, forest_pred),
    }
    return scores, decisions


def per_class_recall(decisions, num_classes):
    """{part: [recall of class k, None where absent]} from {part: [(labels, predictions) per fold]},
    pooled over the folds."""
    from keras_ser.training import metrics as M

    out = {}
    for part, pairs in decisions.items():
        cm = M.confusion_matrix(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]),
                                num_classes)
        out[part] = [float(cm[k, k] / cm[k].sum()) if cm[k].sum() else None for k in range(num_classes)]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from keras_ser.config import load_config
    from keras_ser.training import metrics as M
    from keras_ser.training.data import fold_list, load_manifest
    from keras_ser.training.epr import load_profiles
    from keras_ser.utils import write_json

    cfg = load_config(os.path.join(args.run_dir, "config.yaml"))
    label_names = list(cfg.data.emotions)
    manifest = load_manifest(cfg)
    folds_dir = os.path.join(args.run_dir, "folds")
    sets = statistic_sets(cfg.epr.percentiles)
    labelled = manifest[manifest["emotion"].isin(label_names)]
    labels_of = dict(zip(labelled["utterance_id"], labelled["emotion"].map(label_names.index)))
    per_fold, decisions = {}, {}
    for fold in fold_list(cfg, labelled):
        fold_dir = os.path.join(folds_dir, fold.name)
        if not os.path.exists(os.path.join(fold_dir, "metrics.json")):
            continue
        with open(os.path.join(fold_dir, "metrics.json")) as f:
            recorded = json.load(f)
        if (recorded["train"], recorded["dev"], recorded["test"]) != (len(fold.train), len(fold.dev), len(fold.test)):
            raise RuntimeError(f"{fold_dir}: the run's fold sizes differ from the reconstructed fold's")
        per_fold[fold.name] = []
        for t, rec in enumerate(recorded["stages"], 1):
            profiles = load_profiles(os.path.join(fold_dir, f"stage{t}", "profiles.npz"))
            scores, fold_decisions = fold_scores(cfg, fold, profiles, labels_of, label_names, sets)
            if not np.isclose(scores["paper"]["wa"], rec["forest"]["wa"]):
                raise RuntimeError(f"{fold_dir} stage {t}: the paper set scores WA {scores['paper']['wa']:.4f}, "
                                   f"the run recorded {rec['forest']['wa']:.4f}")
            network_wa = M.weighted_accuracy(*fold_decisions["test network"])
            if not np.isclose(network_wa, rec["network"]["wa"]):
                raise RuntimeError(f"{fold_dir} stage {t}: the mean-posterior decision scores WA "
                                   f"{network_wa:.4f}, the run recorded {rec['network']['wa']:.4f}")
            for part, pair in fold_decisions.items():
                decisions.setdefault(t, {}).setdefault(part, []).append(pair)
            scores["network"] = {m: rec["network"][m] for m in ("wa", "ua")}  # as recorded, for reference
            scores["segments"] = {"wa": rec["segment_wa"]}
            per_fold[fold.name].append(scores)
    if not per_fold:
        raise SystemExit(f"{args.run_dir}: no finished fold")
    stages = min(len(s) for s in per_fold.values())
    summary = {"run_dir": args.run_dir, "folds": sorted(per_fold), "per_fold": per_fold, "stages": []}
    print(f"{len(per_fold)} folds; forest WA / UA %, mean ± sd over folds")
    print("| statistics | " + " | ".join(f"stage {t}" for t in range(1, stages + 1)) + " |")
    print("|---|" + "---|" * stages)
    for name in [*sets, "network", "segments"]:
        row = []
        for t in range(stages):
            wa = M.mean_sd([per_fold[f][t][name]["wa"] for f in per_fold])
            ua = M.mean_sd([per_fold[f][t][name].get("ua") for f in per_fold])
            row.append(f"{100 * wa['mean']:.1f} ± {100 * wa['sd']:.1f}"
                       + (f" / {100 * ua['mean']:.1f}" if ua["n"] else ""))
            summary["stages"].append({"stage": t + 1, "statistics": name, "wa": wa, **({"ua": ua} if ua["n"] else {})})
        print(f"| {name} | " + " | ".join(row) + " |")
    summary["per_class_recall"] = []
    print("\nper-class recall % (pooled over the folds)")
    print("| stage | decision | " + " | ".join(label_names) + " |")
    print("|---|---|" + "---|" * len(label_names))
    for t in range(1, stages + 1):
        for part, recall in per_class_recall(decisions[t], len(label_names)).items():
            summary["per_class_recall"].append({"stage": t, "decision": part, "recall": dict(zip(label_names, recall))})
            print(f"| {t} | {part} | " + " | ".join("–" if r is None else f"{100 * r:.0f}" for r in recall) + " |")
    if args.out:
        write_json(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
