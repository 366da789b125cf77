"""EPR's segment network alone, before any refinery or forest: which network and training.

    python experiments/epr_network_probe.py --folds-file runs/ref/emodb7_kfold_train/folds.json \
        --folds 2 --runs runs/epr_probe --out docs/results/epr_network_probe.json \
        --candidate "paper=epr/emodb_small train.select=last" \
        --candidate "recipe=epr/emodb_recipe" \
        --candidate "recipe_E16=epr/emodb_recipe 'model.params={config: E, width: 0.0625, dense_units: [256, 256], dropout: 0.5}'"

The refinery and the forest can only work with what the stage-1 network's profiles carry, and a
full EPR fold trains `stages * (inner_folds + 1)` networks (8-12, 10-25 minutes a fold on this
CPU): candidates are compared here on the one network that gives the profiles at stage 1, trained
on a fold's training utterances with one-hot segment targets, as `keras_ser.training.epr` trains
it, and scored on the fold's development utterances: the choice is made without the test folds
(`--score test` exists to read a chosen network's test numbers afterwards, not to choose). Per
candidate and fold: segment accuracy, the network's utterance decision (argmax of the mean
segment posterior; WA, UA) and seconds. Resumable: a finished network is reloaded, a finished
row kept.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from seeds_table import parse_row  # noqa: E402


def probe(cfg, rs, labels_of, fold, fold_dir, score="dev"):
    """One candidate on one fold: the stage-1 network, trained on the fold's training utterances,
    scored on its development (`score` "dev") or test utterances. `rs`: the candidate's records;
    `labels_of`: utterance id → class index."""
    import numpy as np

    from keras_ser.training import epr
    from keras_ser.training import metrics as M

    label_names = rs.label_names
    scored = list(fold.dev if score == "dev" else fold.test)
    if not scored:
        raise SystemExit(f"epr_network_probe: fold {fold.name} has no {score} utterances")
    k = len(label_names)
    class_w = None
    if cfg.train.class_weights:
        from keras_ser.labels.emotion_targets import class_weights

        class_w = class_weights(np.eye(k)[[labels_of[u] for u in fold.train]], "hard")
    start = time.perf_counter()
    net = epr.SegmentClassifier(cfg, rs, epr.utterance_stats(rs, cfg, fold.train))
    train_table = epr.make_table(cfg, rs, fold.train, labels_of, None, class_w, k)
    dev_table = None
    if cfg.train.select == "best":  # early stopping needs them (and then they are not a clean score)
        dev_table = epr.make_table(cfg, rs, fold.dev, labels_of, None, class_w, k)
    net.train(rs, train_table, dev_table, os.path.join(fold_dir, "network"))
    profiles = epr.predict_profiles(net, rs, cfg, scored)
    y = np.array([labels_of[u] for u in scored])
    seg_true = np.concatenate([np.full(len(p), lab) for p, lab in zip(profiles, y)])
    seg_pred = np.concatenate([p.argmax(1) for p in profiles])
    decision = M.classification_metrics(y, epr.network_decisions(profiles), label_names)
    return {"fold": fold.name, "segment_wa": M.weighted_accuracy(seg_true, seg_pred),
            "wa": decision["wa"], "ua": decision["ua"], "train_segments": int(train_table.counts.sum()),
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidate", action="append", required=True, help="NAME=PRESET [key=value ...]")
    ap.add_argument("--folds-file", required=True)
    ap.add_argument("--folds", type=int, default=2, help="the first N folds of the folds file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", choices=("dev", "test"), default="dev",
                    help="score on the development utterances (to choose) or the test ones (only to read)")
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        candidates = [parse_row(c, "--candidate") for c in args.candidate]
    except ValueError as exc:
        ap.error(str(exc))

    import numpy as np

    from keras_ser.config import load_config
    from keras_ser.training import data
    from keras_ser.utils import read_json, write_json

    table = read_json(args.out) if os.path.exists(args.out) else {"rows": {}}
    if table.get("score", args.score) != args.score:
        ap.error(f"{args.out} holds scores on {table['score']} utterances: another --out for --score {args.score}")
    table.update(folds_file=args.folds_file, seed=args.seed, score=args.score, about=__doc__.split("\n\n")[2].replace("\n", " "))
    for name, preset, overrides in candidates:
        cfg = load_config(preset, [*overrides, f"seed={args.seed}", "train.verbose=0",
                                   f"protocol.folds_file={args.folds_file}"])
        if cfg.system != "epr":
            ap.error(f"--candidate {name}: {preset} is not an EPR preset")
        if cfg.train.select == "best" and args.score == "dev":
            ap.error(f"--candidate {name}: train.select=best stops on the development utterances it would be "
                     "scored on; give it train.select=last (and a fixed train.epochs)")
        manifest = data.load_manifest(cfg)
        labelled = data.labelled(cfg, manifest)
        folds = data.fold_list(cfg, labelled)[: args.folds]
        row = table["rows"].get(name, {})
        done = {r["fold"]: r for r in row.get("per_fold", []) if row.get("overrides") == overrides}
        rs = labels_of = None
        per_fold = []
        for fold in folds:
            r = done.get(fold.name)
            if r is None:
                if rs is None:  # the candidate's records (its frontend, trimming), once
                    rs = data.prepare_records(cfg, manifest)
                    labels_of = dict(zip(labelled["utterance_id"], labelled["emotion"].map(rs.label_names.index)))
                r = probe(cfg, rs, labels_of, fold, os.path.join(args.runs, name, f"seed{args.seed}", fold.name),
                          args.score)
            per_fold.append(r)
            means = {m: float(np.mean([p[m] for p in per_fold])) for m in ("segment_wa", "wa", "ua")}
            table["rows"][name] = {"preset": preset, "overrides": overrides, "model": cfg.model.params,
                                   "folds": len(per_fold), **means, "per_fold": per_fold}
            write_json(table, args.out)
            print(f"{name} {fold.name}: segments {r['segment_wa']:.3f}, network WA {r['wa']:.3f} UA {r['ua']:.3f} "
                  f"({r['seconds']:.0f} s)", flush=True)
        row = table["rows"][name]
        print(f"{name}: segments {row['segment_wa']:.3f}, network WA {row['wa']:.3f} UA {row['ua']:.3f} "
              f"over {row['folds']} folds", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
