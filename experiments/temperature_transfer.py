"""A temperature for an unseen corpus, chosen on other corpus pairs: the hybrid's cross-corpus cells.

    python experiments/temperature_transfer.py --diagnostics docs/results/fusion_diagnostics_cross.json \
        --reference docs/results/cross_functionals.json --out docs/results/temperature_transfer_cross.json

On a corpus never seen in training no labels are at hand to fit the network's temperature
before averaging it with the reference (`late_fusion.py --calibrate-a` fits it on held-out
training speakers, which are too close to the training data: the unseen corpora want more).
This chooses it the way a deployment could: for each cell train → target of the hybrid's matrix,
the temperature of the grid whose hybrid WA, averaged over the cells with *another* target
corpus, is highest; the cell's own predictions and its target corpus's labels are not used. It
reads the test-fold curves `experiments/fusion_diagnostics.py --temperatures` wrote for every
cell (`pairs[<train>-><target>].per_seed[].hybrid_wa[<T>]`), so the numbers are WA only (the
curves hold no UA), on the curve's grid, mean ± sd over the seeds, beside the reference's WA on
the same cell. `late_fusion.py --temperature-a T` and `keras_ser-fuse --temperature-a T` apply a
temperature so chosen.
"""

import argparse
import json
import statistics
import sys


def choose(cells):
    """`{cell: (T, WA mean, WA sd, WA at T = 1)}`: each cell's temperature chosen on the cells with
    another target corpus (`cells`: `{"train->target": {"per_seed": [{"hybrid_wa": {T: wa}}]}}`)."""
    out = {}
    for name, cell in cells.items():
        target = name.split("->")[1]
        others = [c for n, c in cells.items() if n.split("->")[1] != target]
        if not others:
            raise ValueError(f"{name}: no cell with another target corpus to choose a temperature on")
        grid = sorted(cell["per_seed"][0]["hybrid_wa"], key=float)

        def mean_over(c, t):
            return statistics.mean(s["hybrid_wa"][t] for s in c["per_seed"])

        best = max(grid, key=lambda t: (statistics.mean(mean_over(c, t) for c in others), -float(t)))
        per_seed = [s["hybrid_wa"][best] for s in cell["per_seed"]]
        sd = statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
        out[name] = (float(best), statistics.mean(per_seed), sd, mean_over(cell, grid[0]) if float(grid[0]) == 1.0
                     else None)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diagnostics", required=True, help="fusion_diagnostics.py's JSON of the cross-corpus cells")
    ap.add_argument("--reference", required=True, help="the reference's cross-corpus table (cross_corpus.py)")
    ap.add_argument("--out", default=None, help="a JSON to keep the choices and numbers")
    args = ap.parse_args(argv)
    pairs = json.load(open(args.diagnostics))["pairs"]
    cells = {n: c for n, c in pairs.items() if "->" in n}
    ref = json.load(open(args.reference))["rows"]
    rows = {}
    print("| cell | T chosen on the other targets | hybrid WA | at T = 1 | reference WA |\n|---|---|---|---|---|")
    for name, (t, mean, sd, plain) in choose(cells).items():
        train, target = name.split("->")
        r = ref[train]["unseen"][target]["wa"]["mean"]
        rows[name] = {"temperature": t, "wa": {"mean": mean, "sd": sd, "n": len(cells[name]["per_seed"])},
                      "wa_t1": plain, "reference_wa": r}
        print(f"| {name} | {t:g} | {100 * mean:.1f} ± {100 * sd:.1f} | "
              f"{'' if plain is None else f'{100 * plain:.1f}'} | {100 * r:.1f} |")
    if args.out:
        from keras_ser.utils import write_json

        write_json({"about": __doc__.splitlines()[0], "diagnostics": args.diagnostics, "reference": args.reference,
                    "metric": "WA", "cells": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
