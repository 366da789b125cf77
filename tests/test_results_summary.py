"""experiments/results_summary.py: the opening table and summary.json from the tables' JSONs."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "experiments"))


def test_the_summary_table_links_every_number_to_its_json(tmp_path):
    import results_summary

    os.makedirs(tmp_path / "results")
    row = {"wa": {"mean": 0.7031, "sd": 0.0, "n": 1}, "ua": {"mean": 0.6941, "sd": 0.0, "n": 1}, "protocol": "kfold",
           "folds": 5, "seeds": [0], "deterministic": True}
    fg = {"wa": {"mean": 0.639, "sd": 0.023, "n": 3}, "ua": {"mean": 0.624, "sd": 0.02, "n": 3}, "protocol": "kfold",
          "folds": 5, "seeds": [0, 1, 2]}
    (tmp_path / "results" / "ravdess4.json").write_text(json.dumps({"rows": {"reference": row, "fg_cme": fg}}))
    (tmp_path / "results.md").write_text("# Results\n\n<!-- summary:start -->\nSTALE_TABLE\n<!-- summary:end -->\n\ntail\n")
    results_summary.main(["--docs", str(tmp_path)])
    text = (tmp_path / "results.md").read_text()
    assert "STALE_TABLE" not in text and text.endswith("<!-- summary:end -->\n\ntail\n")
    assert "[70.3 ± 0.0](results/ravdess4.json)" in text and "[62.4 ± 2.0](results/ravdess4.json)" in text
    assert "72.0 / 70.8" in text  # the paper's number beside its preset's row
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    rows = {(e["row"], e["normalization"]): e for e in summary["entries"]}
    assert rows[("reference", "train")]["deterministic"] and rows[("fg_cme", "train")]["seeds"] == 3
    assert rows[("fg_cme", "train")]["json"] == "docs/results/ravdess4.json"


def test_cross_corpus_tables_become_matrices_and_summary_rows(tmp_path):
    import results_summary

    os.makedirs(tmp_path / "results")

    def score(wa, ua):
        return {"wa": {"mean": wa, "sd": 0.01, "n": 3}, "ua": {"mean": ua, "sd": 0.02, "n": 3}}

    rows = {"emodb": {**score(0.876, 0.86), "folds": 5, "seeds": [0, 1, 2],
                      "unseen": {"ravdess": score(0.462, 0.487), "synthetic": score(0.416, 0.416)}},
            "emodb+ravdess": {**score(0.742, 0.74), "folds": 5, "seeds": [0, 1, 2],
                              "unseen": {"synthetic": score(0.449, 0.4491)}}}
    (tmp_path / "results" / "cross_cnn_pool.json").write_text(json.dumps({"rows": rows}))
    (tmp_path / "results" / "cross_functionals.json").write_text(json.dumps({"rows": {"emodb": {
        **score(0.876, 0.86), "folds": 5, "seeds": [0], "deterministic": True, "unseen": {"ravdess": score(0.5, 0.6)}}}}))
    (tmp_path / "results.md").write_text("<!-- summary:start -->\n<!-- summary:end -->\n")
    results_summary.main(["--docs", str(tmp_path)])
    text = (tmp_path / "results.md").read_text()
    # in cnn_pool's matrix, each training corpus's reference row comes first
    assert ("| emodb: reference | (diagonal) | [50.0 / 60.0](results/cross_functionals.json) | — | "
            "[87.6 / 86.0](results/cross_functionals.json) |\n"
            "| emodb: cnn_pool | (diagonal) | [46.2 / 48.7](results/cross_cnn_pool.json) | [41.6 / 41.6]") in text
    assert "| emodb+ravdess: cnn_pool | (trained on) | (trained on) | [44.9 / 44.9](results/cross_cnn_pool.json) |" in text
    assert "| emodb | (diagonal) | [50.0 / 60.0](results/cross_functionals.json) |" in text  # the reference's own
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    cross = {e["protocol"]: e for e in summary["entries"]
             if e["protocol"].startswith("cross:") and e["json"].endswith("cnn_pool.json")}
    assert set(cross) == {"cross:emodb->emodb", "cross:emodb->ravdess", "cross:emodb->synthetic",
                          "cross:emodb+ravdess->emodb+ravdess", "cross:emodb+ravdess->synthetic"}
    assert cross["cross:emodb->ravdess"]["ua"]["mean"] == 0.487 and cross["cross:emodb->ravdess"]["seeds"] == 3
    assert cross["cross:emodb->ravdess"]["json"] == "docs/results/cross_cnn_pool.json"


def test_a_cross_row_scored_on_annotators_majority_is_marked_in_corpus_only(tmp_path):
    """MLEE trained on the synthetic corpus scores its own folds on the annotators' majority
    label: the matrix and summary.json say so for that cell, not for its unseen corpora's."""
    import results_summary

    os.makedirs(tmp_path / "results")
    score = {"wa": {"mean": 0.435, "sd": 0.04, "n": 3}, "ua": {"mean": 0.489, "sd": 0.02, "n": 3}}
    rows = {"synthetic": {**score, "folds": 5, "seeds": [0, 1, 2], "dominant_differs": {"count": 22, "of": 320},
                          "unseen": {"emodb": score}},
            "emodb": {**score, "folds": 5, "seeds": [0, 1, 2], "unseen": {"synthetic": score}}}
    (tmp_path / "results" / "cross_mlee_channel.json").write_text(json.dumps({"rows": rows}))
    (tmp_path / "results.md").write_text("<!-- summary:start -->\n<!-- summary:end -->\n")
    results_summary.main(["--docs", str(tmp_path)])
    text = (tmp_path / "results.md").read_text()
    assert ("| synthetic | [43.5 / 48.9](results/cross_mlee_channel.json) | — | (diagonal) | "
            "[43.5 / 48.9](results/cross_mlee_channel.json) (annotators' majority labels, not the corpus's emotion) |"
            ) in text
    assert "| emodb | (diagonal) | — | [43.5 / 48.9](results/cross_mlee_channel.json) | " \
           "[43.5 / 48.9](results/cross_mlee_channel.json) |" in text
    entries = {e["protocol"]: e for e in json.loads((tmp_path / "results" / "summary.json").read_text())["entries"]
               if e["json"].endswith("cross_mlee_channel.json")}
    assert "annotators' majority" in entries["cross:synthetic->synthetic"]["scored_on"]
    assert not any("scored_on" in entries[p] for p in ("cross:synthetic->emodb", "cross:emodb->emodb",
                                                        "cross:emodb->synthetic"))
