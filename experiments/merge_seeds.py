"""Add the seeds of a row in one table to the same row in another (seeds run on another machine).

    python experiments/merge_seeds.py --table docs/results/emodb7.json --source runs/tables/emodb7_epr.json \
        --row epr_recipe --row "epr_recipe + reference"

A row of `experiments/seeds_table.py` or `experiments/late_fusion.py` keeps each seed's numbers
(`per_seed`: WA, UA, pooled WA / UA, per fold). When some seeds of a row were run where their
run folders are gone (another session's machine), the seeds run since are merged here from the
table they were written to: the row's `per_seed` becomes the union, and its mean ± sd over
seeds is recomputed from `per_seed` alone, as `seeds_table.py` computes it (sd with ddof 1).

Refused (nothing written): a row that differs in what was run (preset and overrides, or the
fusion's parts and weight; normalisation, protocol, folds), tables scored on other folds
(`folds_file`), a seed in both, and seeds scored on other folds (fold names). Rows with unseen
corpora (`data.eval_corpora`, `experiments/cross_corpus.py`) merge when both score the same
corpora the same way (size, missing labels, normalisation, adaptation) and every seed kept its
own WA / UA on each, which tables written before 2026-12-05 did not: such a row is refused. A
metric that is not kept for every seed cannot be recomputed: it is dropped from the row, and
said so.
"""

import argparse
import json
import os
import sys

from seeds_table import UNSEEN_SAME, ms

from keras_ser.utils import write_json

SAME = ("preset", "overrides", "fusion", "system", "normalization", "protocol", "folds")


def merge_row(old, new, name):
    """The row `old` with `new`'s seeds added; `(row, dropped metric names)`. Raises ValueError."""
    for key in SAME:
        if old.get(key) != new.get(key):
            raise ValueError(f"row {name!r}: {key} differs ({old.get(key)!r} / {new.get(key)!r})")
    if "unseen" in old or "unseen" in new:
        check_unseen(old, new, name)
    both = sorted(set(old["seeds"]) & set(new["seeds"]))
    if both:
        raise ValueError(f"row {name!r}: seed(s) {both} in both tables")
    folds = {s["seed"]: sorted(f["fold"] for f in s["per_fold"]) for s in old["per_seed"] + new["per_seed"]}
    if len({tuple(v) for v in folds.values()}) > 1:
        raise ValueError(f"row {name!r}: the seeds were scored on other folds ({folds})")
    per_seed = sorted(old["per_seed"] + new["per_seed"], key=lambda s: s["seed"])
    row = {k: v for k, v in old.items() if k != "per_seed"}
    row["seeds"] = [s["seed"] for s in per_seed]
    dropped = []
    for key, value in old.items():
        if not (isinstance(value, dict) and set(value) == {"mean", "sd", "n"}):
            continue
        if key.startswith("pooled_") and all(s.get("pooled") for s in per_seed):
            row[key] = ms([s["pooled"][key[len("pooled_"):]] for s in per_seed])
        elif all(isinstance(s.get(key), (int, float)) for s in per_seed):
            row[key] = ms([s[key] for s in per_seed])
        else:
            del row[key]
            dropped.append(key)
    if "unseen" in old:
        row["unseen"] = {c: {**u, "wa": ms([s["unseen"][c]["wa"] for s in per_seed]),
                             "ua": ms([s["unseen"][c]["ua"] for s in per_seed])} for c, u in old["unseen"].items()}
    row["per_seed"] = per_seed
    return row, dropped


def check_unseen(old, new, name):
    """Rows with unseen corpora merge when both score the same corpora the same way and every
    seed kept its own numbers on each (`seeds_table.py` keeps them since 2026-12-05). Raises ValueError."""
    corpora = [sorted(r.get("unseen", {})) for r in (old, new)]
    if corpora[0] != corpora[1]:
        raise ValueError(f"row {name!r}: unseen corpora differ ({corpora[0]} / {corpora[1]})")
    for c in corpora[0]:
        for key in UNSEEN_SAME:
            if old["unseen"][c].get(key) != new["unseen"][c].get(key):
                raise ValueError(f"row {name!r}: unseen {c}: {key} differs "
                                 f"({old['unseen'][c].get(key)!r} / {new['unseen'][c].get(key)!r})")
    lacking = sorted(s["seed"] for s in old["per_seed"] + new["per_seed"]
                     if not all(c in s.get("unseen", {}) for c in corpora[0]))
    if lacking:
        raise ValueError(f"row {name!r}: seed(s) {lacking} kept no per-seed numbers on the unseen corpora "
                         f"(a table written before seeds_table.py kept them): rerun those seeds' table to read "
                         f"their runs back")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="the table to add seeds to (rewritten)")
    ap.add_argument("--source", required=True, help="the table holding the new seeds")
    ap.add_argument("--row", action="append", required=True, help="a row name (repeat for several)")
    args = ap.parse_args(argv)
    table, source = (json.load(open(p)) for p in (args.table, args.source))
    if os.path.normpath(table.get("folds_file") or "") != os.path.normpath(source.get("folds_file") or ""):
        ap.error(f"the tables were scored on other folds: {table.get('folds_file')} / {source.get('folds_file')}")
    merged = {}
    for name in args.row:
        if name not in table["rows"] or name not in source["rows"]:
            ap.error(f"row {name!r} is not in both tables")
        try:
            merged[name], dropped = merge_row(table["rows"][name], source["rows"][name], name)
        except ValueError as exc:
            ap.error(str(exc))
        r = merged[name]
        print(f"{name}: seeds {r['seeds']}: WA {100 * r['wa']['mean']:.1f} ± {100 * r['wa']['sd']:.1f}, "
              f"UA {100 * r['ua']['mean']:.1f} ± {100 * r['ua']['sd']:.1f}"
              + (f" (dropped, not kept per seed: {', '.join(dropped)})" if dropped else ""))
    table["rows"].update(merged)
    table["seeds"] = sorted({s for row in table["rows"].values() for s in row.get("seeds", [])})
    write_json(table, args.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
