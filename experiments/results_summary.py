"""docs/results/summary.json and the opening table of docs/results.md, from the tables' JSONs.

    python experiments/results_summary.py            # rewrites both from docs/results/*.json

Each entry of `ENTRIES` names a table JSON written by `experiments/seeds_table.py` (or
`late_fusion.py`) and a row in it, with what the opening table says of it: the system, the
corpus and its protocol, the normalisation, and the recipe (`paper`: the system's paper preset;
`reference`: the openSMILE reference; otherwise the preset or recipe's name). A row that a
table does not hold yet is left out, said. The opening table sits between the markers
`<!-- summary:start -->` and `<!-- summary:end -->` in docs/results.md; every number links to
the JSON it comes from.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
DOCS = os.path.join(os.path.dirname(HERE), "docs")

RAVDESS4 = ("RAVDESS, 4 classes, 5 actor-group folds", "results/ravdess4.json")
EMODB7 = ("Emo-DB, 7 classes, 10-fold stratified", "results/emodb7.json")
EMODB4 = ("Emo-DB, 4 classes, leave one speaker out", "results/emodb4_loso.json")
RAVDESS_S4 = ("RAVDESS, StrengthNet's 4 classes (happy, sad, angry, surprise), 5 actor-group folds",
              "results/ravdess_strength4.json")
RAVDESS_S4_SPEAKER = (RAVDESS_S4[0], "results/ravdess_strength4_speaker.json")
RAVDESS_S4_PER_EMOTION = (RAVDESS_S4[0], "results/ravdess_strength4_speaker_per_emotion.json")

# (corpus and protocol, table, row, system, normalisation, recipe)
ENTRIES = [
    (*RAVDESS4, "reference", "functionals (ComParE, logistic regression)", "train", "reference"),
    (*RAVDESS4, "reference_speaker", "functionals (ComParE, logistic regression)", "speaker", "reference"),
    (*RAVDESS4, "fg_cme", "FG_CME", "train", "paper"),
    (*RAVDESS4, "fg_cme_recipe", "FG_CME", "train", "recipe (fg_cme/ravdess_recipe, model fg_cme)"),
    (*RAVDESS4, "fg_cme_recipe_speaker", "FG_CME", "speaker", "recipe (fg_cme/ravdess_recipe, model fg_cme)"),
    (*RAVDESS4, "cnn_pool", "FG_CME's audio-only baseline cnn_pool", "train", "recipe (fg_cme/ravdess_recipe)"),
    (*RAVDESS4, "cnn_pool_speaker", "FG_CME's audio-only baseline cnn_pool", "speaker", "recipe (fg_cme/ravdess_recipe)"),
    (*RAVDESS4, "cnn_pool + reference", "hybrid: cnn_pool and the reference, late fusion", "train",
     "recipe + reference (mean of probabilities)"),
    (*RAVDESS4, "cnn_pool_speaker + reference_speaker", "hybrid: cnn_pool and the reference, late fusion",
     "speaker", "recipe + reference (mean of probabilities)"),
    (*RAVDESS4, "cnn_pool_channel", "FG_CME's audio-only baseline cnn_pool", "train",
     "recipe + channel augmentation (fg_cme/ravdess_recipe, channel_augment={}, chosen on inner folds)"),
    (*RAVDESS4, "cnn_pool_channel + reference", "hybrid: cnn_pool (channel augmentation) and the reference, late fusion",
     "train", "recipe + reference (mean of probabilities)"),
    (*RAVDESS4, "fg_cme_recipe + reference", "hybrid: FG_CME and the reference, late fusion", "train",
     "recipe + reference (mean of probabilities)"),
    (*RAVDESS4, "fg_cme_recipe_speaker + reference_speaker", "hybrid: FG_CME and the reference, late fusion",
     "speaker", "recipe + reference (mean of probabilities)"),
    (*RAVDESS4, "fg_cme_recipe_channel", "FG_CME", "train",
     "recipe + channel augmentation (fg_cme/ravdess_recipe, model fg_cme, channel_augment={}, chosen on inner folds)"),
    (*RAVDESS4, "fg_cme_recipe_channel + reference", "hybrid: FG_CME (channel augmentation) and the reference, late fusion",
     "train", "recipe + reference (mean of probabilities)"),
    (*RAVDESS4, "fg_cme_recipe_speaker_channel", "FG_CME", "speaker",
     "recipe + a weaker channel augmentation (fg_cme/ravdess_recipe, model fg_cme, "
     "channel_augment={gain: 0.3, shape: 0.15}, chosen on inner folds)"),
    (*RAVDESS4, "fg_cme_recipe_speaker_channel + reference_speaker",
     "hybrid: FG_CME (weaker channel augmentation) and the reference, late fusion", "speaker",
     "recipe + reference (mean of probabilities)"),
    (*RAVDESS4, "cnn_pool + reference, calibrated", "hybrid: cnn_pool (temperature fitted on inner folds) and the reference, "
     "late fusion", "train", "recipe + reference (mean of probabilities, the network's temperature-scaled)"),
    (*RAVDESS4, "mlee_recipe", "MLEE conventional classifier", "train",
     "recipe before the inner-fold search (mlee/ravdess_recipe, spec_augment=null)"),
    (*RAVDESS4, "mlee_recipe + reference", "hybrid: MLEE (no SpecAugment) and the reference, late fusion", "train",
     "recipe + reference (mean of probabilities)"),
    (*RAVDESS4, "mlee_recipe_specaugment", "MLEE conventional classifier", "train",
     "recipe (mlee/ravdess_recipe: SpecAugment, chosen on inner folds)"),
    (*RAVDESS4, "mlee_recipe_specaugment + reference", "hybrid: MLEE and the reference, late fusion", "train",
     "recipe + reference (mean of probabilities)"),
    (*EMODB7, "reference", "functionals (ComParE, logistic regression)", "train", "reference"),
    (*EMODB7, "reference_speaker", "functionals (ComParE, logistic regression)", "speaker", "reference"),
    (*EMODB7, "epr", "EPR", "train", "paper"),
    (*EMODB7, "epr_recipe", "EPR", "train", "recipe (epr/emodb_recipe)"),
    (*EMODB7, "epr_recipe + reference", "hybrid: EPR and the reference, late fusion", "train",
     "recipe + reference (mean of probabilities)"),
    (*EMODB7, "cnn_pool", "FG_CME's audio-only baseline cnn_pool", "train", "recipe (fg_cme/ravdess_recipe)"),
    (*EMODB7, "cnn_pool_speaker", "FG_CME's audio-only baseline cnn_pool", "speaker", "recipe (fg_cme/ravdess_recipe)"),
    (*EMODB7, "cnn_pool + reference", "hybrid: cnn_pool and the reference, late fusion", "train",
     "recipe + reference (mean of probabilities)"),
    (*EMODB7, "cnn_pool_speaker + reference_speaker", "hybrid: cnn_pool and the reference, late fusion",
     "speaker", "recipe + reference (mean of probabilities)"),
    (*EMODB4, "reference", "functionals (ComParE, logistic regression)", "train", "reference"),
    (*EMODB4, "reference_speaker", "functionals (ComParE, logistic regression)", "speaker", "reference"),
    (*EMODB4, "cnn_pool", "FG_CME's audio-only baseline cnn_pool", "train", "recipe (fg_cme/ravdess_recipe)"),
    (*EMODB4, "cnn_pool_speaker", "FG_CME's audio-only baseline cnn_pool", "speaker", "recipe (fg_cme/ravdess_recipe)"),
    (*EMODB4, "cnn_pool + reference", "hybrid: cnn_pool and the reference, late fusion", "train",
     "recipe + reference (mean of probabilities)"),
    (*EMODB4, "cnn_pool_speaker + reference_speaker", "hybrid: cnn_pool and the reference, late fusion",
     "speaker", "recipe + reference (mean of probabilities)"),
    (*EMODB4, "cnn_pool_channel", "FG_CME's audio-only baseline cnn_pool", "train",
     "recipe + channel augmentation (fg_cme/ravdess_recipe, channel_augment={}, chosen on RAVDESS inner folds)"),
    (*EMODB4, "cnn_pool_channel + reference", "hybrid: cnn_pool (channel augmentation) and the reference, late fusion",
     "train", "recipe + reference (mean of probabilities)"),
    (*EMODB4, "mlee_recipe", "MLEE conventional classifier", "train", "recipe (mlee/emodb_recipe)"),
    (*EMODB4, "mlee_recipe + reference", "hybrid: MLEE and the reference, late fusion", "train",
     "recipe + reference (mean of probabilities)"),
    (*RAVDESS_S4, "reference", "functionals (ComParE, logistic regression)", "train", "reference"),
    (*RAVDESS_S4, "strengthnet_recipe_no_bn", "StrengthNet's emotion head", "train",
     "recipe before the inner-fold search (no batch norm, no SpecAugment)"),
    (*RAVDESS_S4, "strengthnet_recipe", "StrengthNet's emotion head", "train", "recipe (strengthnet/ravdess_recipe)"),
    (*RAVDESS_S4, "strengthnet_recipe + reference", "hybrid: StrengthNet's emotion head and the reference, late fusion",
     "train", "recipe + reference (mean of probabilities)"),
    (*RAVDESS_S4_SPEAKER, "reference_speaker", "functionals (ComParE, logistic regression)", "speaker", "reference"),
    (*RAVDESS_S4_SPEAKER, "strengthnet_recipe_speaker", "StrengthNet's emotion head", "speaker",
     "recipe (strengthnet/ravdess_recipe)"),
    (*RAVDESS_S4_SPEAKER, "strengthnet_recipe_speaker + reference_speaker",
     "hybrid: StrengthNet's emotion head and the reference, late fusion", "speaker",
     "recipe + reference (mean of probabilities)"),
    (*RAVDESS_S4_PER_EMOTION, "strengthnet_recipe_speaker_per_emotion", "StrengthNet's emotion head", "speaker",
     "recipe with ranking labels per emotion (strength.per=emotion, chosen on the training actors' intensity)"),
    (*RAVDESS_S4_PER_EMOTION, "strengthnet_recipe_speaker_per_emotion + reference_speaker",
     "hybrid: StrengthNet's emotion head (labels per emotion) and the reference, late fusion", "speaker",
     "recipe + reference (mean of probabilities)"),
]

# The opening table: one row per system, corpus and normalisation; each column a row of a table
# JSON fixed in advance (never the best of several by their test scores). None: not measured.
COMPACT = [
    ("FG_CME", RAVDESS4, "train", "72.0 / 70.8¹", "reference", "fg_cme", "fg_cme_recipe_channel",
     "fg_cme_recipe_channel + reference"),
    ("FG_CME", RAVDESS4, "speaker", "", "reference_speaker", None, "fg_cme_recipe_speaker_channel",
     "fg_cme_recipe_speaker_channel + reference_speaker"),
    ("FG_CME's audio-only baseline (cnn_pool)", RAVDESS4, "train", "", "reference", None, "cnn_pool_channel",
     "cnn_pool_channel + reference"),
    ("FG_CME's audio-only baseline (cnn_pool)", RAVDESS4, "speaker", "", "reference_speaker", None, "cnn_pool_speaker",
     "cnn_pool_speaker + reference_speaker"),
    ("MLEE conventional classifier", RAVDESS4, "train", "", "reference", None, "mlee_recipe_specaugment",
     "mlee_recipe_specaugment + reference"),
    ("MLEE conventional classifier", EMODB4, "train", "", "reference", None, "mlee_recipe", "mlee_recipe + reference"),
    ("cnn_pool", EMODB4, "train", "", "reference", None, "cnn_pool_channel", "cnn_pool_channel + reference"),
    ("cnn_pool", EMODB4, "speaker", "", "reference_speaker", None, "cnn_pool_speaker",
     "cnn_pool_speaker + reference_speaker"),
    ("EPR", EMODB7, "train", "88.04 / 87.78²", "reference", "epr", "epr_recipe", "epr_recipe + reference"),
    ("cnn_pool", EMODB7, "train", "", "reference", None, "cnn_pool", "cnn_pool + reference"),
    ("cnn_pool", EMODB7, "speaker", "", "reference_speaker", None, "cnn_pool_speaker",
     "cnn_pool_speaker + reference_speaker"),
    ("StrengthNet's emotion head", RAVDESS_S4, "train", "", "reference", None, "strengthnet_recipe",
     "strengthnet_recipe + reference"),
    ("StrengthNet's emotion head", RAVDESS_S4_SPEAKER, "speaker", "", "reference_speaker", None,
     "strengthnet_recipe_speaker", "strengthnet_recipe_speaker + reference_speaker"),
]
NOTES = ("¹ the epoch chosen on the test fold (PAPERS.md §4); ² pEPR, VGG*5, 10-fold (PAPERS.md §3). "
         "Hybrid: the recipe's and the reference's class probabilities averaged (late fusion, weight 0.5); `keras_ser-fuse` makes one deployable model of the two exports (docs/serving.md).")

# Cross-corpus tables (experiments/cross_corpus.py): (system, its short name, table, normalisation,
# recipe, the reference's table of the same normalisation: its rows come first in the matrix)
CROSS = [
    ("functionals (ComParE, logistic regression)", "reference", "results/cross_functionals.json",
     "train; unseen: own corpus", "reference", None),
    ("functionals (ComParE, logistic regression)", "reference", "results/cross_functionals_speaker.json", "speaker",
     "reference", None),
    ("functionals (eGeMAPS, logistic regression)", "eGeMAPS", "results/cross_functionals_egemaps.json",
     "train; unseen: own corpus", "reference with eGeMAPSv02 (88 functionals)", "results/cross_functionals.json"),
    ("FG_CME's audio-only baseline cnn_pool", "cnn_pool", "results/cross_cnn_pool.json", "train; unseen: own corpus",
     "recipe (fg_cme/ravdess_recipe)", "results/cross_functionals.json"),
    ("cnn_pool + reference (late fusion)", "hybrid", "results/cross_cnn_pool_reference.json",
     "train; unseen: own corpus", "hybrid (cnn_pool recipe + reference)", "results/cross_functionals.json"),
    ("cnn_pool + channel augmentation", "cnn_pool + channel", "results/cross_cnn_pool_channel.json",
     "train; unseen: own corpus", "recipe + model.params.channel_augment={} (chosen on inner folds of RAVDESS)",
     "results/cross_functionals.json"),
    ("cnn_pool + channel augmentation + reference (late fusion)", "hybrid", "results/cross_cnn_pool_channel_reference.json",
     "train; unseen: own corpus", "hybrid (cnn_pool + channel augmentation, and the reference)",
     "results/cross_functionals.json"),
    ("cnn_pool + channel augmentation + reference, the network calibrated (late fusion)", "hybrid, calibrated",
     "results/cross_cnn_pool_channel_calibrated_reference.json", "train; unseen: own corpus",
     "hybrid (cnn_pool + channel augmentation, its temperature fitted on inner folds of the training corpus, "
     "and the reference)", "results/cross_functionals.json"),
    ("MLEE conventional classifier", "MLEE", "results/cross_mlee.json", "train; unseen: own corpus",
     "recipe (mlee/ravdess_recipe, with its SpecAugment)", "results/cross_functionals.json"),
    ("MLEE conventional classifier + channel augmentation", "MLEE + channel", "results/cross_mlee_channel.json",
     "train; unseen: own corpus", "recipe + model.params.channel_augment={} (chosen on inner folds of RAVDESS)",
     "results/cross_functionals.json"),
    ("MLEE + channel augmentation + reference (late fusion)", "hybrid", "results/cross_mlee_channel_reference.json",
     "train; unseen: own corpus", "hybrid (MLEE + channel augmentation, and the reference)",
     "results/cross_functionals.json"),
    ("cnn_pool + channel augmentation for standardised features", "cnn_pool + channel",
     "results/cross_cnn_pool_channel03_speaker.json", "speaker",
     "recipe + model.params.channel_augment={gain: 0.3, shape: 0.15} (FG_CME's per-speaker channel, chosen on inner "
     "folds of RAVDESS)", "results/cross_functionals_speaker.json"),
    ("cnn_pool + channel augmentation + reference, per speaker (late fusion)", "hybrid",
     "results/cross_cnn_pool_channel03_speaker_reference.json", "speaker",
     "hybrid (cnn_pool + channel augmentation, and the reference, both per speaker)",
     "results/cross_functionals_speaker.json"),
    ("functionals (ComParE, logistic regression), self-trained on the unseen corpus", "reference + self-training",
     "results/cross_functionals_st.json", "train; unseen: own corpus",
     "reference + data.eval_adapt=self_training (its own surest guesses on the unseen corpus's unlabelled audio)",
     "results/cross_functionals.json"),
    ("functionals (ComParE, logistic regression), self-trained on the unseen corpus", "reference + self-training",
     "results/cross_functionals_speaker_st.json", "speaker",
     "reference + data.eval_adapt=self_training (its own surest guesses on the unseen corpus's unlabelled audio)",
     "results/cross_functionals_speaker.json"),
    ("MLEE + channel augmentation + the self-trained reference (late fusion)", "hybrid",
     "results/cross_mlee_channel_st_reference.json", "train; unseen: own corpus",
     "hybrid (MLEE + channel augmentation, and the reference self-trained on the unseen corpus)",
     "results/cross_functionals.json"),
    ("cnn_pool + channel augmentation + the self-trained reference, per speaker (late fusion)", "hybrid",
     "results/cross_cnn_pool_channel03_speaker_st_reference.json", "speaker",
     "hybrid (cnn_pool + channel augmentation, and the reference self-trained on the unseen corpus, both per speaker)",
     "results/cross_functionals_speaker.json"),
]

PAPER = {  # the papers' own numbers for the comparable task (WA, UA %), where there is one
    ("RAVDESS", "FG_CME"): ("72.0 / 70.8", "epoch chosen on the test fold (PAPERS.md §4)"),
    ("Emo-DB, 7", "EPR"): ("88.04 / 87.78", "pEPR, VGG*5 (PAPERS.md §3)"),
}


def main(argv=None):
    import argparse

    from keras_ser.utils import read_json, write_json, write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", default=DOCS, help="the docs folder (results.md, results/)")
    docs = ap.parse_args(argv).docs

    entries, missing = [], []
    for corpus, table, row, system, norm, recipe in ENTRIES:
        path = os.path.join(docs, table)
        rows = read_json(path)["rows"] if os.path.exists(path) else {}
        if row not in rows:
            missing.append(f"{table}#{row}")
            continue
        r = rows[row]
        entries.append({"system": system, "corpus": corpus, "protocol": r.get("protocol", "fusion of two rows"),
                        "normalization": norm, "recipe": recipe, "folds": r.get("folds"),
                        "seeds": len(r.get("seeds", [])), "deterministic": bool(r.get("deterministic")),
                        "wa": r["wa"], "ua": r["ua"], "pooled_wa": r.get("pooled_wa"), "pooled_ua": r.get("pooled_ua"),
                        "json": f"docs/{table}", "row": row})
    cross_sections = []
    for system, short, table, norm, recipe, ref_table in CROSS:
        path = os.path.join(docs, table)
        if not os.path.exists(path):
            missing.append(table)
            continue
        import cross_corpus

        rows = read_json(path)["rows"]
        for train, r in rows.items():
            cells = [(train, r)] * ("wa" in r) + list(r.get("unseen", {}).items())  # no "wa": unseen only
            for test, c in cells:
                entries.append({"system": system, "corpus": "cross-corpus, 4 classes, 5 speaker-group folds",
                                "protocol": f"cross:{train}->{test}", "normalization": norm, "recipe": recipe,
                                "folds": r.get("folds"), "seeds": len(r.get("seeds", [])),
                                "deterministic": bool(r.get("deterministic")), "wa": c["wa"], "ua": c["ua"],
                                "pooled_wa": c.get("pooled_wa"), "pooled_ua": c.get("pooled_ua"),
                                "json": f"docs/{table}", "row": train,
                                **({"scored_on": cross_corpus.OTHER_LABELS}
                                   if test == train and r.get("dominant_differs") else {})})
        seeds = sorted({len(r.get("seeds", [])) for r in rows.values()})
        cross_sections += ["", f"Cross-corpus, {system}, {recipe}, normalisation {norm} "
                           f"(seeds: {'/'.join(map(str, seeds))}; WA / UA %, mean over seeds):", ""]
        ref_path = os.path.join(docs, ref_table) if ref_table else None
        reference = read_json(ref_path)["rows"] if ref_path and os.path.exists(ref_path) else None
        cross_sections += cross_corpus.matrix_lines(rows, link=table, reference=reference, reference_link=ref_table,
                                                    name=short)
    write_json({"about": "One entry per row of the opening table of docs/results.md (experiments/results_summary.py). "
                         "wa/ua: mean and sd over seeds of each run's mean over folds.", "entries": entries},
               os.path.join(docs, "results", "summary.json"))

    lines = ["| corpus and protocol | system | normalisation | recipe | WA % | UA % | paper (WA / UA) | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        if e["protocol"].startswith("cross:"):
            continue  # in the matrices below
        link = f"[{{}}]({e['json'][len('docs/'):]})"
        wa = link.format(f"{100 * e['wa']['mean']:.1f} ± {100 * e['wa']['sd']:.1f}")
        ua = link.format(f"{100 * e['ua']['mean']:.1f} ± {100 * e['ua']['sd']:.1f}")
        paper = next((f"{v[0]}; {v[1]}" for (c, s), v in PAPER.items()
                      if e["corpus"].startswith(c) and e["system"] == s and e["recipe"] == "paper"), "")
        seeds = "— (deterministic)" if e["deterministic"] else str(e["seeds"])
        lines.append(f"| {e['corpus']} | {e['system']} | {e['normalization']} | {e['recipe']} | {wa} | {ua} | "
                     f"{paper} | {seeds} |")
    rows_of = {}
    for table_file in {c[1][1] for c in COMPACT}:
        path = os.path.join(docs, table_file)
        rows_of[table_file] = read_json(path)["rows"] if os.path.exists(path) else {}

    def cell(table_file, row):
        r = rows_of[table_file].get(row) if row else None
        if r is None:
            return "—"
        return (f"[{100 * r['wa']['mean']:.1f} / {100 * r['ua']['mean']:.1f}]({table_file})"
                + ("" if r.get("deterministic") or len(r.get("seeds", [])) >= 3 else f" ({len(r.get('seeds', []))} seed{'s' if len(r.get('seeds', [])) > 1 else ''})"))

    compact = ["| system | corpus, protocol | normalisation | paper | reference | keras_ser, paper preset | "
               "keras_ser, recipe | recipe + reference (hybrid) |", "|---|---|---|---|---|---|---|---|"]
    for system, (corpus, table_file), norm, paper, *cols in COMPACT:
        compact.append(f"| {system} | {corpus} | {norm} | {paper} | " + " | ".join(cell(table_file, c) for c in cols) + " |")
    table = "\n".join(compact + ["", NOTES, "", "Every row of the tables, WA and UA as mean ± sd over seeds:", ""] + lines
                      + cross_sections)
    results = os.path.join(docs, "results.md")
    text = open(results).read()
    start, end = "<!-- summary:start -->", "<!-- summary:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        write_text(head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1], results)
    print(table)
    if missing:
        print(f"\nnot measured yet: {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
