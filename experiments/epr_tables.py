"""The EPR paper's Tables 2-4 layout: rows = refinery × stage, columns = the network's and the
random forest's WA/UA.

    python experiments/epr_tables.py epr/emodb_small [key=value ...] [--refineries pepr,sepr,...]
        [--out docs/results/epr_emodb.json]

Each refinery is one `keras_ser-train` run (same preset, protocol and overrides) with
`epr.refinery` set; runs go to `<output_dir or runs/epr_tables>/<refinery>/` and resume when
interrupted. Stage 1 learns one-hot utterance labels whatever the refinery, so it is trained once:
the first refinery's finished `stage1` folders (networks and profiles) are copied into the others'
fold folders, where the run finds them done. Prints a Markdown table; `--out` keeps the numbers.
"""

import argparse
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REFINERIES = ("pepr", "sepr", "hard_dynamic", "soft_static")
NAMES = {"pepr": "pEPR", "sepr": "sEPR", "hard_dynamic": "hard dynamic", "soft_static": "soft static"}


def share_stage1(first_dir, out_dir):
    folds = os.path.join(first_dir, "folds")
    for fold in sorted(os.listdir(folds)) if os.path.isdir(folds) else []:
        src = os.path.join(folds, fold, "stage1")
        dst = os.path.join(out_dir, "folds", fold, "stage1")
        if os.path.exists(os.path.join(src, "profiles.npz")) and not os.path.exists(dst):
            shutil.copytree(src, dst)


def table(results):
    lines = ["| refinery | stage | network WA | network UA | forest WA | forest UA |", "|---|---|---|---|---|---|"]
    for ref, summary in results.items():
        for row in summary["stages"]:
            n, f = row["network"], row["forest"]
            lines.append(f"| {NAMES[ref]} | {row['stage']} | {100 * n['wa']['mean']:.1f} | {100 * n['ua']['mean']:.1f} "
                         f"| {100 * f['wa']['mean']:.1f} | {100 * f['ua']['mean']:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--refineries", default=",".join(REFINERIES))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from keras_ser.config import load_config
    from keras_ser.training.runner import run
    from keras_ser.utils import write_json

    refineries = args.refineries.split(",")
    base = load_config(args.preset, args.overrides).output_dir or "runs/epr_tables"
    results, first_dir = {}, None
    for ref in refineries:
        out_dir = os.path.join(base, ref)
        if first_dir:
            share_stage1(first_dir, out_dir)
        cfg = load_config(args.preset, [*args.overrides, f"epr.refinery={ref}", f"output_dir={out_dir}"])
        results[ref] = run(cfg)
        first_dir = first_dir or out_dir
        print(table(results))
        if args.out:  # after every refinery, so that a cut-short experiment keeps what it finished
            write_json({"preset": args.preset, "overrides": args.overrides,
                        "protocol": results[refineries[0]]["protocol"], "folds_run": results[refineries[0]]["folds_run"],
                        "rows": {r: s["stages"] for r, s in results.items()}}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
