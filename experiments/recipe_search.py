"""Choose a recipe on the development speakers, never on the test folds, then score it.

    python experiments/recipe_search.py --base fg_cme/ravdess_recipe \
        --folds-file runs/ref/ravdess4_kfold5_train/folds.json --runs runs/search/ravdess4 \
        --out docs/results/recipe_search_ravdess4.json \
        --candidate "base=" --candidate "epochs60=train.epochs=60" \
        --candidate "speed=data.speed_perturb=[0.9,1.1]" ...

Stage 1, selection, never on a test fold. `--select-by dev` (the default): every candidate (the
base preset plus its overrides) is trained on each outer fold's training speakers only and
scored on that fold's development speakers (a folds file whose test parts are the development
parts; `--select-seeds` seeds). `--select-by inner --inner-folds K`: each outer fold's training
and development utterances are split into K inner folds (whole speakers when the outer folds
are grouped by speaker, else stratified by emotion), every candidate is trained K times per
outer fold and scored on every inner part: a judge on all the training speakers rather than on
the one or two development speakers of a fold, which were a noisy one on RAVDESS (the plain
recipe scored 53.6 WA on them and 67.2 on the test actors); K times the cost, which
`--select-outer N` (only the first N outer folds) bounds. The candidate with the best mean UA
(then WA) over the selection folds is chosen; `--select-metric` names another of the rows'
numbers (StrengthNet's `intensity_auc`, or `srcc`; higher is better). Stage 2, assessment: the
chosen candidate is run on the real folds (training and development speakers, as
`train.select` last/average does; `--seeds` seeds); its test numbers are the result. `--out`
is written when the selection ends (`"assessment": null`; `--select-only` stops there) and again
with the assessment, including every candidate's selection scores, so the choice can be checked.
`--table FILE [--table-row NAME]` also puts the assessed row into a `seeds_table.py` table of the
same folds (under NAME, default the chosen candidate's name), beside the rows it is compared with.
"""

import argparse
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def dev_folds(folds_file, out, outer=None):
    """A folds file whose test parts are the development parts of `folds_file`'s (first `outer`)
    folds, and no development part: nothing is chosen inside a candidate's run."""
    from keras_ser.utils import read_json, write_json

    doc = read_json(folds_file)
    folds = [{"name": f["name"], "train": f["train"], "dev": [], "test": f["dev"], "dev_from_train": False}
             for f in doc["folds"][:outer]]
    return write_json({**doc, "folds": folds, "derived_from": os.path.abspath(folds_file),
                       "about": "test = the original development parts (recipe selection)"}, out)


def inner_folds(folds_file, manifest, k, out, outer=None):
    """A folds file of `k` inner folds per outer fold of `folds_file` (its first `outer` folds):
    the outer fold's training and development utterances, never its test part, split into `k`
    parts, each the test part once with the others trained on. Parts are whole groups (the
    outer folds' `group`, e.g. speakers, dealt out in sorted order) when the outer folds are
    grouped, else stratified by emotion (each emotion's utterances dealt out in sorted order)."""
    from keras_ser.utils import read_json, write_json

    doc = read_json(folds_file)
    group = doc.get("group")
    info = manifest.drop_duplicates("utterance_id").set_index("utterance_id")
    if group and group not in info.columns:
        raise SystemExit(f"{folds_file}: folds grouped by {group!r}, which the corpus manifest has no column for")
    folds = []
    for f in doc["folds"][:outer]:
        pool = sorted(f["train"] + f["dev"])
        missing = [u for u in pool if u not in info.index]
        if missing:
            raise SystemExit(f"{folds_file}: fold {f['name']}: {len(missing)} utterances not in the corpus "
                             f"manifest (first {missing[0]!r})")
        part = {}
        if group:
            units = sorted(set(info.loc[pool, group].astype(str)))
            if len(units) < k:
                raise SystemExit(f"{folds_file}: fold {f['name']} has {len(units)} {group} groups for training, "
                                 f"fewer than --inner-folds {k}")
            of_unit = {u: i % k for i, u in enumerate(units)}
            part = {u: of_unit[str(info.at[u, group])] for u in pool}
        else:
            emotions = info.loc[pool, "emotion"].astype(str)
            for emotion in sorted(set(emotions)):
                for i, u in enumerate(sorted(emotions.index[emotions == emotion])):
                    part[u] = i % k
        for j in range(k):
            folds.append({"name": f"{f['name']}-inner{j + 1}of{k}", "train": [u for u in pool if part[u] != j],
                          "dev": [], "test": [u for u in pool if part[u] == j], "dev_from_train": False})
    return write_json({**doc, "folds": folds, "derived_from": os.path.abspath(folds_file),
                       "about": f"{k} inner folds of each outer fold's training and development parts "
                                f"(recipe selection; no outer test utterance)"}, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the preset every candidate starts from")
    ap.add_argument("--candidate", action="append", required=True, help="NAME=[key=value ...]")
    ap.add_argument("--folds-file", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--select-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--select-by", choices=("dev", "inner"), default="dev",
                    help="score candidates on each outer fold's development part, or on inner folds of its "
                         "training and development parts")
    ap.add_argument("--inner-folds", type=int, default=3, help="inner folds per outer fold (--select-by inner)")
    ap.add_argument("--select-outer", type=int, default=None,
                    help="select on the first N outer folds only (default: all)")
    ap.add_argument("--select-metric", default="ua",
                    help="the selection rows' number to maximise (ua, wa, intensity_auc, srcc, ...); ties: WA")
    ap.add_argument("--select-only", action="store_true", help="stop after the selection (no assessment)")
    ap.add_argument("--table", help="also add the assessed row to this seeds_table.py JSON (same --folds-file)")
    ap.add_argument("--table-row", help="the row's name in --table (default: the chosen candidate's)")
    ap.add_argument("--extra", nargs="*", default=[], help="overrides for every candidate")
    args = ap.parse_args(argv)
    import seeds_table

    from keras_ser.utils import read_json, write_json

    if args.inner_folds < 2:
        ap.error("--inner-folds must be at least 2")
    if args.table and args.select_only:
        ap.error("--table takes the assessed row: not with --select-only")
    if args.table and os.path.exists(args.table):
        other = read_json(args.table).get("folds_file")
        if other and os.path.abspath(other) != os.path.abspath(args.folds_file):
            ap.error(f"--table {args.table} is scored on the folds of {other}, not --folds-file {args.folds_file}")
    os.makedirs(args.runs, exist_ok=True)
    candidates = {}
    for spec in args.candidate:
        name, _, rest = spec.partition("=")
        candidates[name] = shlex.split(rest)
    def full(overrides):  # --extra first, so that a candidate's own override wins over it
        return [*args.extra, *overrides, "protocol.min_fold_utterances=1"]
    from keras_ser.config import load_config
    from keras_ser.errors import ConfigError

    for name, overrides in candidates.items():  # before anything runs, each candidate by name
        try:
            load_config(args.base, full(overrides))
        except ConfigError as e:
            raise SystemExit(f"--candidate {name}: {e} (a value with spaces is quoted inside the candidate: "
                             f"--candidate \"{name}='key={{a: 1, b: 2}}'\")") from None
    selection_folds = os.path.join(args.runs, "selection_folds.json")
    if args.select_by == "dev":
        select_folds = dev_folds(args.folds_file, selection_folds, args.select_outer)
        criterion = f"mean development {args.select_metric} over the outer folds, then WA"
    else:
        from keras_ser.training.data import load_manifest

        manifest = load_manifest(load_config(args.base, full([])))
        select_folds = inner_folds(args.folds_file, manifest, args.inner_folds, selection_folds, args.select_outer)
        criterion = (f"mean {args.select_metric} over {args.inner_folds} inner folds of each outer fold's training "
                     f"and development parts, then WA")

    def row(name, overrides):
        return f"--row={name}={args.base} {' '.join(shlex.quote(o) for o in full(overrides))}"

    selection = os.path.join(args.runs, "selection.json")
    seeds_table.main([*[row(n, o) for n, o in candidates.items()], "--seeds", *map(str, args.select_seeds),
                      "--folds-file", select_folds, "--runs", os.path.join(args.runs, "selection"), "--out", selection])
    scores = read_json(selection)["rows"]
    missing = [n for n in candidates if args.select_metric not in scores[n]]
    if missing:
        have = sorted(k for k, v in scores[missing[0]].items() if isinstance(v, dict) and "mean" in v)
        raise SystemExit(f"--select-metric {args.select_metric}: not in the selection rows of {', '.join(missing)} "
                         f"({selection}); they have {', '.join(have)}")
    chosen = max(candidates, key=lambda n: (scores[n][args.select_metric]["mean"], scores[n]["wa"]["mean"]))
    print(f"chosen ({criterion}): {chosen} ({' '.join(candidates[chosen]) or 'the base preset'})")
    doc = {"base": args.base, "folds_file": args.folds_file, "selection_folds": select_folds,
           "select_by": args.select_by, "select_outer": args.select_outer,
           "inner_folds": args.inner_folds if args.select_by == "inner" else None, "criterion": criterion,
           "select_metric": args.select_metric,
           "candidates": {n: {"overrides": o, "dev_wa": scores[n]["wa"], "dev_ua": scores[n]["ua"],
                              **({f"dev_{args.select_metric}": scores[n][args.select_metric]}
                                 if args.select_metric not in ("wa", "ua") else {})}
                          for n, o in candidates.items()},
           "chosen": chosen, "assessment": None}
    write_json(doc, args.out)  # a killed assessment keeps the selection
    if args.select_only:
        return 0
    assessment = os.path.join(args.runs, "assessment.json")
    seeds_table.main([row(chosen, candidates[chosen]), "--seeds", *map(str, args.seeds), "--folds-file",
                      args.folds_file, "--runs", os.path.join(args.runs, "assessment"), "--out", assessment])
    write_json({**doc, "assessment": read_json(assessment)["rows"][chosen]}, args.out)
    a = read_json(args.out)["assessment"]
    if args.table:
        table = read_json(args.table) if os.path.exists(args.table) else {"rows": {}, "folds_file": args.folds_file}
        table["rows"][args.table_row or chosen] = {**a, "selected_by": {"recipe_search": args.out, "candidate": chosen,
                                                                         "criterion": criterion}}
        table["seeds"] = sorted({sd for r in table["rows"].values() for sd in r["seeds"]})
        write_json(table, args.table)
    print(f"{chosen} on the test folds: WA {100 * a['wa']['mean']:.1f} ± {100 * a['wa']['sd']:.1f}, "
          f"UA {100 * a['ua']['mean']:.1f} ± {100 * a['ua']['sd']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
