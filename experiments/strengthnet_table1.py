"""The StrengthNet paper's Table 1 layout with the corpora at hand: rows = training corpora (single,
fused) and ablations; columns = unseen speakers of the training corpora and unseen corpora.

    python experiments/strengthnet_table1.py [key=value ...] [--rows emodb,ravdess,...]
        [--base runs/strengthnet_table1] [--collect] [--out docs/results/strengthnet_table1.json]

Every row is one `keras_ser-train` run (a preset plus the row's overrides plus the command line's)
into `<base>/<row>/`; an interrupted row resumes. `--collect` trains nothing: it reads each row's
`metrics.json` and prints the table. The paper's rows map onto these as follows: R_ESD(·) ↔ the
training corpus's ranking functions applied to an unseen corpus (`R_<corpus>` in the unseen
columns); StrengthNet_ESD ↔ `emodb` / `ravdess`; StrengthNet_ESD+SAVEE on RAVDESS ↔
`emodb+synthetic` (a second corpus fused in, RAVDESS unseen); StrengthNet_ESD+RAVDESS on SAVEE ↔
`emodb+ravdess` (the synthetic corpus unseen); "w/o L_cat" and "w/o L_frame" ↔
the `*_no_*` rows. The `*_mean_pool` rows are not in the paper: the emotion head on the mean of
its BiLSTM's outputs instead of its final states (`model.params.emotion_pooling`); `*_loss` also
stops early on the weighted total development loss (`strength.monitor=loss`), so that the emotion
head's progress counts, instead of the paper's development strength MAE. Every unseen
corpus is scored against its own ranking labels, as in the paper. The CPU runs in
docs/results.md passed `train.epochs=12 train.learning_rate=3.0e-4 train.batch_size=16
train.patience=5 data.max_frames=400`.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROWS = {
    "emodb": ("StrengthNet_Emo-DB", "strengthnet/emodb", []),
    "ravdess": ("StrengthNet_RAVDESS", "strengthnet/ravdess", []),
    "emodb+synthetic": ("StrengthNet_Emo-DB+synthetic", "strengthnet/emodb", ["data.fuse=[{corpus: synthetic}]"]),
    "emodb+ravdess": ("StrengthNet_Emo-DB+RAVDESS", "strengthnet/fused", ["data.eval_corpora=[{corpus: synthetic}]"]),
    "emodb_no_cat": ("StrengthNet_Emo-DB w/o L_cat", "strengthnet/emodb", ["strength.loss_weights={emotion: 0.0}"]),
    "emodb_no_frame": ("StrengthNet_Emo-DB w/o L_frame", "strengthnet/emodb",
                       ["strength.loss_weights={frame_strength: 0.0}"]),
    "emodb_mean_pool": ("StrengthNet_Emo-DB, emotion head on the mean over frames", "strengthnet/emodb",
                        ["model.params={emotion_pooling: mean}"]),
    "ravdess_mean_pool": ("StrengthNet_RAVDESS, emotion head on the mean over frames", "strengthnet/ravdess",
                          ["model.params={emotion_pooling: mean}"]),
    "emodb_mean_pool_loss": ("StrengthNet_Emo-DB, emotion head on the mean over frames, stopping on the total "
                             "dev loss", "strengthnet/emodb",
                             ["model.params={emotion_pooling: mean}", "strength.monitor=loss"]),
    "ravdess_mean_pool_loss": ("StrengthNet_RAVDESS, emotion head on the mean over frames, stopping on the total "
                               "dev loss", "strengthnet/ravdess",
                               ["model.params={emotion_pooling: mean}", "strength.monitor=loss"]),
}


def _cell(m, key="mae"):
    return f"{m[key]:.3f}" if m and m.get(key) is not None else "–"


def _mae(m):
    """"MAE [best constant's MAE]"."""
    return _cell(m) + (f" [{m['mae_constant']:.3f}]" if m.get("mae_constant") is not None else "")


def _epochs(out_dir, fold, key="val_strength_mae"):
    """(epochs run, best epoch by `key`, the history column the run monitored) from the fold's
    history.csv, or (None, None)."""
    import csv

    path = os.path.join(out_dir, "folds", fold, "strengthnet", "history.csv")
    if not os.path.exists(path):
        return None, None
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    best = min(range(len(rows)), key=lambda i: float(rows[i][key])) if rows else None
    return len(rows), None if best is None else best + 1


def _strength(r):
    """MAE, best constant's MAE, SRCC and n of one `evaluate` result, plus its intensity check."""
    o = r["overall"]
    out = {"mae": o["mae"], "mae_constant": o.get("mae_constant"), "srcc": o["srcc"], "n": o["n"]}
    for k in ("agreement", "auc", "labels_agreement", "labels_auc") if "intensity" in r else ():
        out["intensity_" + k] = r["intensity"].get(k)
    return out


def row_summary(name, metrics, out_dir=None):
    """One table row from a run's metrics.json: test (unseen speakers), per corpus when fused, and
    every unseen corpus with the training corpora's ranking functions applied to it."""
    fold = metrics["folds"][0]
    config = None
    settings = os.path.join(out_dir, "config.yaml") if out_dir else None
    if settings and os.path.exists(settings):  # what the row was trained with, also under --collect
        import yaml

        with open(settings, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    monitor = fold.get("monitor")  # runs before it was recorded: the same rule from their config
    if monitor is None:
        from keras_ser.training.strengthnet import monitored_metric

        strength = config["strength"] if config else {}
        monitor = monitored_metric(strength.get("monitor", "strength_mae"), strength.get("loss_weights"))
    epochs, best = _epochs(out_dir, fold["fold"], monitor) if out_dir else (None, None)
    out = {"name": name, "corpus": metrics["corpus"], "folds_run": metrics["folds_run"],
           "test": {**_strength(fold), "lcc": fold["overall"]["lcc"], "emotion_wa": fold["emotion"]["wa"],
                    "emotion_ua": fold["emotion"]["ua"]},
           "epochs": epochs, "best_epoch": best}
    if config:
        train = config["train"]
        out["settings"] = {**{k: train[k] for k in ("epochs", "learning_rate", "batch_size", "patience")},
                           "max_frames": config["data"]["max_frames"],
                           "model_params": config["model"].get("params") or {},
                           "loss_weights": config["strength"]["loss_weights"],
                           "monitor": config["strength"].get("monitor", "strength_mae"), "monitored": monitor}
    for c, r in fold.get("per_corpus", {}).items():
        out["test_" + c] = {**_strength(r), "emotion_wa": r["emotion"]["wa"]}
    for c, r in fold.get("unseen", {}).items():
        u = {**_strength(r), "emotion_wa": r["emotion"]["wa"]}
        for k, v in r.items():
            if k.startswith("R_"):
                u[k] = {"mae": v["mae"], "srcc": v["srcc"]}
        out["unseen_" + c] = u
    return out


def _intensity(v):
    """", intensity agreement a (AUC b; labels c / d)" where the corpus has intensities."""
    if v.get("intensity_agreement") is None:
        return ""
    return (f", intensity agreement {v['intensity_agreement']:.3f} (AUC {_cell(v, 'intensity_auc')}; labels "
            f"{_cell(v, 'intensity_labels_agreement')} / {_cell(v, 'intensity_labels_auc')})")


def markdown(rows):
    lines = ["| row | test: MAE [best constant] / SRCC / emotion WA | unseen corpus: MAE [best constant] / SRCC "
             "(R_train: MAE / SRCC) |",
             "|---|---|---|"]
    for r in rows.values():
        t = r["test"]
        test = f"{_mae(t)} / {t['srcc']:.3f} / {t['emotion_wa']:.3f}"
        parts = [f"{k[5:]} {_mae(v)}/{_cell(v, 'srcc')}/{_cell(v, 'emotion_wa')}" for k, v in r.items()
                 if k.startswith("test_")]
        if parts:
            test += " (" + "; ".join(parts) + ")"
        test += _intensity(t)
        unseen = []
        for k, v in r.items():
            if k.startswith("unseen_"):
                rs = "; ".join(f"{rk}: {_cell(rv)}/{_cell(rv, 'srcc')}" for rk, rv in v.items() if rk.startswith("R_"))
                cell = f"{k[7:]} {_mae(v)}/{_cell(v, 'srcc')}" + (f" ({rs})" if rs else "")
                cell += _intensity(v)
                unseen.append(cell)
        lines.append(f"| {r['name']} | {test} | {'; '.join(unseen) or '–'} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--base", default="runs/strengthnet_table1")
    ap.add_argument("--collect", action="store_true", help="read the rows' metrics.json; train nothing")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    unknown = [r for r in args.rows.split(",") if r not in ROWS]
    if unknown:
        ap.error(f"unknown row {unknown[0]!r}; rows: {', '.join(ROWS)}")

    results = {}
    for row in args.rows.split(","):
        name, preset, extra = ROWS[row]
        out_dir = os.path.join(args.base, row)
        path = os.path.join(out_dir, "metrics.json")
        if not args.collect:
            from keras_ser.config import load_config
            from keras_ser.training.runner import run

            run(load_config(preset, [*extra, *args.overrides, f"output_dir={out_dir}"]))
        if not os.path.exists(path):
            print(f"{row}: no {path} (not run yet)", file=sys.stderr)
            continue
        with open(path, encoding="utf-8") as f:
            results[row] = dict(row_summary(name, json.load(f), out_dir), preset=preset, overrides=extra)
        print(markdown(results))
        if args.out:  # after every row, so that a cut-short experiment keeps what it finished
            from keras_ser.utils import write_json

            write_json({"overrides": args.overrides, "rows": results}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
