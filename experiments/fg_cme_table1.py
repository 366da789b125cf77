"""The FG_CME paper's Table 1 layout: rows = baselines, FG_CME and its ablations; columns = WA/UA.

    python experiments/fg_cme_table1.py fg_cme/ravdess [key=value ...] [--rows fg_cme,no_cme,...]
        [--out docs/results/fg_cme_ravdess.json]

Every row is one `keras_ser-train` run of the same preset, protocol and overrides plus the row's
own overrides; runs go to `<output_dir or runs/fg_cme_table1>/<row>/` and resume when
interrupted. Prints a Markdown table; `--out` keeps the numbers. When `--out` already holds rows
of the same preset and overrides, the new rows are added to them (a row run again replaces its
entry), so a long baseline can be run later into the same table; rows of another preset or other
overrides are refused.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROWS = {
    "cnn_lstm": ("CNN+LSTM (acoustic)", ["model.name=cnn_lstm"]),
    "blstm_attention_audio": ("BiLSTM+attention (acoustic)", ["model.name=blstm_attention_audio"]),
    "blstm_attention_text": ("BiLSTM+attention (text)", ["model.name=blstm_attention_text"]),
    "utterance_concat": ("Utterance-level concatenation", ["model.name=utterance_concat"]),
    "attention_fusion": ("Attention fusion", ["model.name=attention_fusion"]),
    "fg_cme": ("FG_CME", []),
    "no_acoustic_excitation": ("FG_CME w/o acoustic excitation", ["model.params.excite_acoustic=false"]),
    "no_semantic_excitation": ("FG_CME w/o semantic excitation", ["model.params.excite_semantic=false"]),
    "no_cme": ("FG_CME w/o both excitations", ["model.params.excite_acoustic=false",
                                               "model.params.excite_semantic=false"]),
    "approximate_alignment": ("FG_CME, approximate alignment", ["fg_cme.alignment=approximate"]),
    "uniform_alignment": ("FG_CME, uniform alignment", ["fg_cme.alignment=uniform"]),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        ap.error(f"--rows: unknown row(s) {', '.join(unknown)}; rows are {', '.join(ROWS)}")
    from keras_ser.utils import read_json, write_json  # no TensorFlow: the checks stay fast

    results = {}
    if args.out and os.path.exists(args.out):
        try:
            old = read_json(args.out)
            same = (old["preset"], old["overrides"]) == (args.preset, args.overrides)
        except (ValueError, KeyError, TypeError) as e:
            ap.error(f"{args.out}: not a table written by this script ({e}); give another --out or remove it")
        if not same:
            ap.error(f"{args.out}: holds rows of {old['preset']} {' '.join(old['overrides'])}, not of "
                     f"{args.preset} {' '.join(args.overrides)}; give another --out or remove it")
        results = old.get("rows", {})

    from keras_ser.config import load_config
    from keras_ser.training.runner import run

    base = load_config(args.preset, args.overrides).output_dir or "runs/fg_cme_table1"
    for row in rows:
        name, extra = ROWS[row]
        cfg = load_config(args.preset, [*args.overrides, *extra, f"output_dir={os.path.join(base, row)}"])
        s = run(cfg)
        results[row] = {"name": name, "overrides": extra, "word_timings": s["word_timings"], "folds_run": s["folds_run"],
                        "wa": s["mean"]["wa"], "ua": s["mean"]["ua"],
                        "per_fold": [{"fold": f["fold"], "wa": f["wa"], "ua": f["ua"]} for f in s["folds"]]}
        if "best_on_test" in s:  # fg_cme.test_curve: the original code's optimistic epoch choice
            results[row]["best_on_test"] = s["best_on_test"]
        print("| row | WA | UA |\n|---|---|---|\n" + "\n".join(
            f"| {r['name']} | {100 * r['wa']['mean']:.1f} ± {100 * r['wa']['sd']:.1f} | "
            f"{100 * r['ua']['mean']:.1f} ± {100 * r['ua']['sd']:.1f} |" for r in results.values()))
        if args.out:  # after every row, so that a cut-short experiment keeps what it finished
            write_json({"preset": args.preset, "overrides": args.overrides, "rows": results}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
