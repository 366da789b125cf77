"""The MLEE paper's Table 3 layout: rows = variants, columns = training set (dominant, all) × WA/UA.

    python experiments/mlee_table3.py mlee/synthetic [key=value ...] [--variants hard,soft,...]
        [--out docs/results/mlee_synthetic.json]

Every cell is one `keras_ser-train` run (same preset, protocol and overrides) with
`task.variant` and `task.train_set` set; runs go to `<output_dir or runs/table3>/<variant>-<set>/`
and resume when interrupted. Hard targets exist only on the dominant set, so those cells of the
"all" column are "n/a", as in the paper. Prints a Markdown table; `--out` also keeps the numbers.

Cells share identical stages instead of retraining them: the MLEE stage of `mlee_only`,
`pretrain_*` and `fusion_*` on one training set is the same network, and so is the dominant stage
of `fusion_k` and the `k` cell. A finished stage is copied into the later cell's fold folder,
where the run finds it done and loads it.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS = ("hard", "soft", "mlee_only", "pretrain_hard", "pretrain_soft", "fusion_hard", "fusion_soft")
LABELS = {
    "hard": "Conventional, hard", "soft": "Conventional, soft", "mlee_only": "MLEE only",
    "pretrain_hard": "MLEE pre-training, hard", "pretrain_soft": "MLEE pre-training, soft",
    "fusion_hard": "MLEE pre-training fusion, hard", "fusion_soft": "MLEE pre-training fusion, soft",
}


def stage_key(cfg, stage):
    """What makes two stages the same network (with the same preset and overrides)."""
    train_set = "dominant" if stage.kind == "hard" else cfg.task.train_set
    return (stage.name, stage.kind, train_set, stage.learning_rate, stage.frozen)


def share_stages(cfg, done_stages, out_dir):
    """Copy finished stages with the same key into this cell's fold folders."""
    import shutil

    from keras_ser.training.mlee import recipe

    for stage in recipe(cfg)[:-1]:
        src = done_stages.get(stage_key(cfg, stage))
        if not src:
            continue
        for fold in os.listdir(src):
            a = os.path.join(src, fold, stage.name)
            b = os.path.join(out_dir, "folds", fold, stage.name)
            if os.path.exists(os.path.join(a, "done")) and not os.path.exists(b):
                shutil.copytree(a, b)


def cell(summary):
    m = summary["mean"]
    return f"{100 * m['wa']['mean']:.1f} / {100 * m['ua']['mean']:.1f}"


def table(results, variants, sets):
    lines = ["| variant | " + " | ".join(f"{s}: WA / UA (%)" for s in sets) + " |",
             "|---|" + "---|" * len(sets)]
    for v in variants:
        row = [cell(results[(v, s)]) if (v, s) in results else "n/a" for s in sets]
        lines.append(f"| {LABELS[v]} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--sets", default="dominant,all")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from keras_ser.config import load_config
    from keras_ser.training.mlee import recipe
    from keras_ser.training.runner import run

    variants, sets = args.variants.split(","), args.sets.split(",")
    base = load_config(args.preset, args.overrides)
    root = base.output_dir or os.path.join("runs", "table3", f"{base.system}-{base.data.corpus}")
    results, done_stages = {}, {}
    for v in variants:
        for s in sets:
            if v.endswith("hard") and s == "all" and not v.startswith(("pretrain", "fusion")):
                continue  # no hard targets outside the dominant set
            out_dir = os.path.join(root, f"{v}-{s}")
            cfg = load_config(args.preset, [*args.overrides, f"task.variant={v}", f"task.train_set={s}",
                                            f"output_dir={out_dir}"])
            share_stages(cfg, done_stages, out_dir)
            results[(v, s)] = run(cfg)
            for stage in recipe(cfg):
                done_stages.setdefault(stage_key(cfg, stage), os.path.join(out_dir, "folds"))
            print(f"== {v} / {s}: {cell(results[(v, s)])}", flush=True)
            if args.out:  # after every cell, so that a cut-short experiment keeps what it finished
                write_out(args, base, results)
    print(table(results, variants, sets))
    return 0


def write_out(args, base, results):
    from keras_ser.utils import write_json

    doc = {"preset": args.preset, "overrides": args.overrides, "protocol": base.protocol.name,
           "cells": [{"variant": v, "train_set": s, "wa": r["mean"]["wa"], "ua": r["mean"]["ua"],
                      "folds_run": r["folds_run"], "seconds": r["seconds"],
                      "per_fold": [{"fold": f["name"], "wa": f["wa"], "ua": f["ua"], "n": f["n"]}
                                   for f in r["folds"]]}
                     for (v, s), r in results.items()]}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    write_json(doc, args.out)


if __name__ == "__main__":
    sys.exit(main())
