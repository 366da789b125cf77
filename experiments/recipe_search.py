"""Choose a recipe on the development speakers, never on the test folds, then score it.

    python experiments/recipe_search.py --base fg_cme/ravdess_recipe \
        --folds-file runs/ref/ravdess4_kfold5_train/folds.json --runs runs/search/ravdess4 \
        --out docs/results/recipe_search_ravdess4.json \
        --candidate "base=" --candidate "epochs60=train.epochs=60" \
        --candidate "speed=data.speed_perturb=[0.9,1.1]" ...

Stage 1, selection: every candidate (the base preset plus its overrides) is trained on each
outer fold's training speakers only and scored on that fold's development speakers (a folds
file whose test parts are the development parts; `--select-seeds` seeds). The candidate with
the best mean development UA (then WA) is chosen. Stage 2, assessment: the chosen candidate is
run on the real folds (training and development speakers, as `train.select` last/average
does; `--seeds` seeds); its test numbers are the result. Both stages are kept in `--out`,
including every candidate's development scores, so the choice can be checked.
"""

import argparse
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def dev_folds(folds_file, out):
    """A folds file whose test parts are `folds_file`'s development parts (and no development
    part: nothing is chosen inside a candidate's run)."""
    from keras_ser.utils import read_json, write_json

    doc = read_json(folds_file)
    folds = [{"name": f["name"], "train": f["train"], "dev": [], "test": f["dev"], "dev_from_train": False}
             for f in doc["folds"]]
    return write_json({**doc, "folds": folds, "derived_from": os.path.abspath(folds_file),
                       "about": "test = the original development parts (recipe selection)"}, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the preset every candidate starts from")
    ap.add_argument("--candidate", action="append", required=True, help="NAME=[key=value ...]")
    ap.add_argument("--folds-file", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--select-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--extra", nargs="*", default=[], help="overrides for every candidate")
    args = ap.parse_args(argv)
    import seeds_table

    from keras_ser.utils import read_json, write_json

    os.makedirs(args.runs, exist_ok=True)
    select_folds = dev_folds(args.folds_file, os.path.join(args.runs, "selection_folds.json"))
    candidates = {}
    for spec in args.candidate:
        name, _, rest = spec.partition("=")
        candidates[name] = shlex.split(rest)
    common = [*args.extra, "protocol.min_fold_utterances=1"]

    def row(name, overrides):
        return f"--row={name}={args.base} {' '.join(shlex.quote(o) for o in overrides + common)}"

    selection = os.path.join(args.runs, "selection.json")
    seeds_table.main([*[row(n, o) for n, o in candidates.items()], "--seeds", *map(str, args.select_seeds),
                      "--folds-file", select_folds, "--runs", os.path.join(args.runs, "selection"), "--out", selection])
    scores = read_json(selection)["rows"]
    chosen = max(candidates, key=lambda n: (scores[n]["ua"]["mean"], scores[n]["wa"]["mean"]))
    print(f"chosen on the development speakers: {chosen} ({' '.join(candidates[chosen]) or 'the base preset'})")
    assessment = os.path.join(args.runs, "assessment.json")
    seeds_table.main([row(chosen, candidates[chosen]), "--seeds", *map(str, args.seeds), "--folds-file",
                      args.folds_file, "--runs", os.path.join(args.runs, "assessment"), "--out", assessment])
    write_json({"base": args.base, "folds_file": args.folds_file, "selection_folds": select_folds,
                "criterion": "mean development UA over the outer folds, then WA",
                "candidates": {n: {"overrides": o, "dev_wa": scores[n]["wa"], "dev_ua": scores[n]["ua"]}
                               for n, o in candidates.items()},
                "chosen": chosen, "assessment": read_json(assessment)["rows"][chosen]}, args.out)
    a = read_json(args.out)["assessment"]
    print(f"{chosen} on the test folds: WA {100 * a['wa']['mean']:.1f} ± {100 * a['wa']['sd']:.1f}, "
          f"UA {100 * a['ua']['mean']:.1f} ± {100 * a['ua']['sd']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
