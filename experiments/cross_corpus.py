"""Train on one corpus, test on another: the matrix train-on-row / test-on-column of one system.

    python experiments/cross_corpus.py functionals/ravdess --seeds 0 --runs runs/cross/functionals \
        --out docs/results/cross_functionals.json [key=value ...]
    python experiments/cross_corpus.py fg_cme/ravdess_recipe --seeds 0 1 2 --runs runs/cross/cnn_pool \
        --out docs/results/cross_cnn_pool.json

For each training corpus (Emo-DB, RAVDESS, their fusion, the synthetic corpus) one row of
`experiments/seeds_table.py` runs the system's preset on it — the 4 classes angry, happy, neutral,
sad; 5 folds of speaker groups — with every other corpus as `data.eval_corpora`: each fold's
model is scored on each unseen corpus (mean over the folds' models, then over seeds). The
diagonal is the in-corpus cross-validation on unseen speakers. Unseen corpora are standardised
with their own statistics (`data.eval_normalization=corpus`), as the practitioner's reference
was measured; `--extra data.eval_normalization=train` keeps the training statistics. Prints the
matrix (WA / UA %); `--out` keeps the table (`rows[<train corpus>]["unseen"]`). MLEE trains and
scores on the annotators' majority label where a corpus keeps several annotators' labels (the
synthetic corpus): its own-folds cell there is marked, not comparable with the reference's (its
unseen cells are scored on each unseen corpus's emotion, as every system's are).
"""

import argparse
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
CORPORA = {  # name: (data overrides, eval_corpora entry)
    "emodb": (["data.corpus=emodb", "data.root=../shared/data/emodb"], "{corpus: emodb, root: ../shared/data/emodb}"),
    "ravdess": (["data.corpus=ravdess", "data.root=../shared/data/ravdess"],
                "{corpus: ravdess, root: ../shared/data/ravdess}"),
    "synthetic": (["data.corpus=synthetic", "data.root=null", "data.synthetic_size=default"], "{corpus: synthetic}"),
}
FUSED = ("emodb+ravdess", ["data.corpus=emodb", "data.root=../shared/data/emodb",
                           "data.fuse=[{corpus: ravdess, root: ../shared/data/ravdess}]"])
# a row whose own folds are scored on MLEE's dominant label, not the corpus's emotion (`dominant_differs`)
OTHER_LABELS = "annotators' majority labels, not the corpus's emotion"
COMMON = ["data.emotions=[angry, happy, neutral, sad]", "protocol.name=kfold", "protocol.k=5", "protocol.group=speaker",
          "data.speed_perturb=[]"]


def rows():
    """`(train name, overrides, unseen corpus names)` of the matrix's rows."""
    out = []
    for name, (data, _) in CORPORA.items():
        others = [c for c in CORPORA if c != name]
        out.append((name, data + [f"data.eval_corpora=[{', '.join(CORPORA[c][1] for c in others)}]"], others))
    out.append((FUSED[0], FUSED[1] + [f"data.eval_corpora=[{CORPORA['synthetic'][1]}]"], ["synthetic"]))
    return out


def matrix_lines(table, link=None, reference=None, reference_link=None, name="system"):
    """The matrix of a cross-corpus table as Markdown lines: WA / UA % (mean over seeds) of each
    training corpus (row) on each unseen corpus (column), its own folds last; `link`: a path each
    number links to. With `reference` (the reference's table, linked to `reference_link`), each
    training corpus gets the reference's row first, then this system's (`name`)."""
    def fmt(r, to):
        text = f"{100 * r['wa']['mean']:.1f} / {100 * r['ua']['mean']:.1f}"
        return f"[{text}]({to})" if to else text

    def line(train, label, r, to):
        cells = [fmt(r["unseen"][t], to) if t in r.get("unseen", {}) else "(diagonal)" if t == train
                 else "(trained on)" if t in train.split("+") else "—" for t in tests]
        own = ("—" if "wa" not in r else  # a fusion of the unseen corpora only (late_fusion --unseen-only)
               fmt(r, to) + (f" ({OTHER_LABELS})" if r.get("dominant_differs") else ""))
        return f"| {label} | " + " | ".join(cells) + f" | {own} |"

    tests = list(CORPORA)
    lines = ["| trained on \\ tested on | " + " | ".join(tests) + " | its own folds (unseen speakers) |",
             "|---|" + "---|" * (len(tests) + 1)]
    for train in [r[0] for r in rows()]:
        if reference is not None and train in reference:
            lines.append(line(train, f"{train}: reference", reference[train], reference_link))
        if train in table:
            lines.append(line(train, f"{train}: {name}" if reference is not None else train, table[train], link))
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset")
    ap.add_argument("extra", nargs="*")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", nargs="*", default=None, help="only these training corpora")
    args = ap.parse_args(argv)
    import seeds_table

    from keras_ser.utils import read_json

    chosen = [r for r in rows() if args.train is None or r[0] in args.train]
    per_speaker = any(e.startswith("data.normalization=") and not e.endswith("=train") for e in args.extra)
    common = COMMON + ([] if per_speaker else ["data.eval_normalization=corpus"])  # speaker: the same on them
    spec = [f"--row={name}={args.preset} {' '.join(shlex.quote(o) for o in common + overrides + args.extra)}"
            for name, overrides, _ in chosen]
    seeds_table.main([*spec, "--seeds", *map(str, args.seeds), "--runs", args.runs, "--out", args.out])
    print("\n" + "\n".join(matrix_lines(read_json(args.out)["rows"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
