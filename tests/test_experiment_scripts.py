"""experiments/late_fusion.py (two runs' probabilities averaged fold by fold, unseen corpora too),
experiments/fusion_diagnostics.py, and the argument checks of experiments/epr_network_probe.py and
experiments/seeds_table.py, experiments/merge_seeds.py, experiments/temperature_transfer.py, and the table of
experiments/strengthnet_truth_runs.py, and experiments/strength_reference.py (the ridge reference for
StrengthNet's strength and its fusion)."""

import json
import os
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "experiments"))

LABELS = ["angry", "sad"]


def _predictions(path, ids, truth, probs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    df = pd.DataFrame({"utterance_id": ids, "speaker": "s", "emotion": [LABELS[t] for t in truth],
                       "predicted": [LABELS[int(np.argmax(p))] for p in probs]})
    for j, name in enumerate(LABELS):
        df[f"score_{name}"] = [p[j] for p in probs]
    df.to_csv(path, index=False)


def _run(root, folds, unseen):
    """A run folder: `folds` {name: (ids, truth, probs)}, `unseen` {corpus: {fold: (ids, truth, probs)}}."""
    for name, (ids, truth, probs) in folds.items():
        _predictions(os.path.join(root, "folds", name, "predictions.csv"), ids, truth, probs)
    for corpus, per_fold in unseen.items():
        for name, (ids, truth, probs) in per_fold.items():
            _predictions(os.path.join(root, "folds", name, "unseen", corpus, "predictions.csv"), ids, truth, probs)
    with open(os.path.join(root, "metrics.json"), "w") as f:
        json.dump({"labels": LABELS, "unseen": {c: {"normalization": "corpus", "missing_labels": []} for c in unseen}}, f)
    return str(root)


def test_fusion_averages_probabilities_in_and_across_corpora(tmp_path):
    import late_fusion

    truth = [0, 0, 1, 1]
    # a is right on u1, u2; b on u3, u4. The means: u1 (0.65, 0.35) right, u2 (0.625, 0.375)
    # right, u3 (0.35, 0.65) right, u4 (0.65, 0.35) wrong (a is surer than b there): 3 of 4
    pa = [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.9, 0.1]]
    pb = [[0.4, 0.6], [0.45, 0.55], [0.1, 0.9], [0.4, 0.6]]
    ids = ["u1", "u2", "u3", "u4"]
    unseen_a = {"other": {"f1": (["x1", "x2"], [0, 1], [[0.3, 0.7], [0.3, 0.7]])}}
    unseen_b = {"other": {"f1": (["x1", "x2"], [0, 1], [[0.9, 0.1], [0.6, 0.4]])}}
    a = _run(tmp_path / "a", {"f1": (ids, truth, pa)}, unseen_a)
    b = _run(tmp_path / "b", {"f1": (ids, truth, pb)}, unseen_b)
    # a's unseen predictions also hold an unlabelled utterance and one of a label the model lacks
    # (`loop.score_unseen` predicts every utterance); b's (an older run) only the labelled ones
    path = os.path.join(a, "folds", "f1", "unseen", "other", "predictions.csv")
    extra = pd.DataFrame({"utterance_id": ["x3", "x4"], "speaker": "s", "emotion": [None, "surprise"],
                          "predicted": "sad", "score_angry": 0.1, "score_sad": 0.9})
    pd.concat([pd.read_csv(path), extra]).to_csv(path, index=False)
    table = str(tmp_path / "table.json")
    assert late_fusion.main(["--a", a, "--b", b, "--name", "emodb", "--table", table]) == 0
    row = json.load(open(table))["rows"]["emodb"]
    assert row["wa"]["mean"] == pytest.approx(0.75)
    # unseen: mean (0.6, 0.4) on x1 → angry (right); (0.45, 0.55) on x2 → sad (right)
    assert row["unseen"]["other"]["wa"]["mean"] == pytest.approx(1.0)
    assert row["unseen"]["other"]["n"] == 2 and row["unseen"]["other"]["normalization"] == "corpus"


def test_fusion_leaves_out_an_unseen_corpus_without_labels(tmp_path, capsys):
    """An unlabelled unseen corpus (predicted, nothing to score) is not fused into NaN metrics:
    it is left out of the row, and said; the labelled one beside it is scored."""
    import late_fusion

    p = [[0.9, 0.1], [0.2, 0.8]]
    unseen = {"other": {"f1": (["x1", "x2"], [0, 1], p)}, "mine": {"f1": (["m1", "m2"], [0, 0], p)}}
    a = _run(tmp_path / "a", {"f1": (["u1", "u2"], [0, 1], p)}, unseen)
    b = _run(tmp_path / "b", {"f1": (["u1", "u2"], [0, 1], p)}, unseen)
    for run in (a, b):
        path = os.path.join(run, "folds", "f1", "unseen", "mine", "predictions.csv")
        pd.read_csv(path).assign(emotion=None).to_csv(path, index=False)
    table = str(tmp_path / "t.json")
    assert late_fusion.main(["--a", a, "--b", b, "--name", "x", "--table", table]) == 0
    row = json.load(open(table))["rows"]["x"]
    assert set(row["unseen"]) == {"other"} and row["unseen"]["other"]["wa"]["mean"] == pytest.approx(1.0)
    assert "unseen mine: none of the model's labels, not scored" in capsys.readouterr().out


def test_fusion_refuses_different_folds_or_unseen_corpora(tmp_path):
    import late_fusion

    p = [[0.9, 0.1], [0.2, 0.8]]
    a = _run(tmp_path / "a", {"f1": (["u1", "u2"], [0, 1], p)}, {"other": {"f1": (["x1"], [0], [[0.5, 0.5]])}})
    b = _run(tmp_path / "b", {"f1": (["u1", "u3"], [0, 1], p)}, {"other": {"f1": (["x1"], [0], [[0.5, 0.5]])}})
    with pytest.raises(SystemExit, match="different utterances"):
        late_fusion.main(["--a", a, "--b", b, "--name", "x", "--table", str(tmp_path / "t.json")])
    c = _run(tmp_path / "c", {"f1": (["u1", "u2"], [0, 1], p)}, {})
    with pytest.raises(SystemExit, match="same ones"):
        late_fusion.main(["--a", a, "--b", c, "--name", "x", "--table", str(tmp_path / "t.json")])
    with pytest.raises(SystemExit, match="no labelled unseen corpus"):
        late_fusion.main(["--a", c, "--b", c, "--name", "x", "--table", str(tmp_path / "t.json"), "--unseen-only"])


def test_fusion_of_the_unseen_corpora_only_leaves_the_own_folds_out(tmp_path):
    """Runs whose own folds score different utterances (MLEE's majority labels on the synthetic
    corpus) are fused on the unseen corpora alone: the row has no in-corpus WA and its matrix
    cell is blank."""
    import cross_corpus
    import late_fusion

    p = [[0.9, 0.1], [0.2, 0.8]]
    a = _run(tmp_path / "a", {"f1": (["u1", "u2"], [0, 1], p)},
             {"emodb": {"f1": (["x1", "x2"], [0, 1], [[0.3, 0.7], [0.3, 0.7]])}})
    b = _run(tmp_path / "b", {"f1": (["u1", "u3"], [0, 1], p)},
             {"emodb": {"f1": (["x1", "x2"], [0, 1], [[0.9, 0.1], [0.6, 0.4]])}})
    table = str(tmp_path / "t.json")
    assert late_fusion.main(["--a", a, "--b", b, "--name", "synthetic", "--table", table, "--unseen-only"]) == 0
    row = json.load(open(table))["rows"]["synthetic"]
    assert "wa" not in row and row["fusion"]["unseen_only"] is True
    assert row["unseen"]["emodb"]["wa"]["mean"] == pytest.approx(1.0)  # (0.6, 0.4) on x1, (0.45, 0.55) on x2
    line = [x for x in cross_corpus.matrix_lines(json.load(open(table))["rows"]) if x.startswith("| synthetic")]
    assert len(line) == 1 and "100.0 / 100.0" in line[0] and line[0].endswith("| — |")


def test_fusion_calibrates_a_on_its_inner_folds(tmp_path, capsys):
    import late_fusion

    # Inner folds of outer fold f1 (held-out training speakers): a says angry at 0.9 and is right
    # 3 times in 4, so the likelihood's temperature makes 0.9 into 0.75: 9 ** (1 / T) = 3, T = 2.
    inner = tmp_path / "inner" / "recipe" / "seed0" / "folds"
    _predictions(str(inner / "f1-inner1of2" / "predictions.csv"), ["i1", "i2"], [0, 1], [[0.9, 0.1]] * 2)
    _predictions(str(inner / "f1-inner2of2" / "predictions.csv"), ["i3", "i4"], [0, 0], [[0.9, 0.1]] * 2)
    truth, ids = [0, 0, 1, 1], ["u1", "u2", "u3", "u4"]
    # the plain mean gets u4 wrong, (1.02, 0.98); with a at T = 2, (0.55, 0.45) + (0.42, 0.58): right
    a = _run(tmp_path / "a", {"f1": (ids, truth, [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.6, 0.4]])}, {})
    b = _run(tmp_path / "b", {"f1": (ids, truth, [[0.4, 0.6], [0.45, 0.55], [0.1, 0.9], [0.42, 0.58]])}, {})
    table = str(tmp_path / "t.json")
    assert late_fusion.main(["--a", a, "--b", b, "--name", "plain", "--table", table]) == 0
    assert late_fusion.main(["--a", a, "--b", b, "--name", "calibrated", "--table", table,
                             "--calibrate-a", str(tmp_path / "inner")]) == 0
    rows = json.load(open(table))["rows"]
    assert rows["plain"]["wa"]["mean"] == pytest.approx(0.75) and "temperature_a" not in rows["plain"]["fusion"]
    assert rows["calibrated"]["fusion"]["temperature_a"]["f1"] == pytest.approx(2.0, rel=1e-3)
    assert rows["calibrated"]["wa"]["mean"] == pytest.approx(1.0)
    assert "f1 2.00" in capsys.readouterr().out
    _predictions(str(tmp_path / "inner" / "other" / "seed0" / "folds" / "f1-inner1of2" / "predictions.csv"),
                 ["i1"], [0], [[0.5, 0.5]])
    with pytest.raises(SystemExit, match="inner runs of several configs"):
        late_fusion.main(["--a", a, "--b", b, "--name", "c", "--table", table, "--calibrate-a", str(tmp_path / "inner")])
    assert late_fusion.main(["--a", a, "--b", b, "--name", "c", "--table", table,
                             "--calibrate-a", str(tmp_path / "inner" / "recipe")]) == 0
    os.rename(inner / "f1-inner1of2", inner / "f2-inner1of2")
    os.rename(inner / "f1-inner2of2", inner / "f2-inner2of2")
    with pytest.raises(SystemExit, match="no inner-fold predictions of outer fold f1"):
        late_fusion.main(["--a", a, "--b", b, "--name", "c", "--table", table,
                          "--calibrate-a", str(tmp_path / "inner" / "recipe")])


def test_fusion_softens_a_with_a_temperature_chosen_elsewhere(tmp_path):
    import late_fusion

    # As in the calibration test: a at T = 2 turns u4 from wrong to right, on the fold and unseen.
    truth, ids = [0, 0, 1, 1], ["u1", "u2", "u3", "u4"]
    pa, pb = [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.6, 0.4]], [[0.4, 0.6], [0.45, 0.55], [0.1, 0.9], [0.42, 0.58]]
    a = _run(tmp_path / "a", {"f1": (ids, truth, pa)}, {"other": {"f1": (["x1"], [1], [[0.6, 0.4]])}})
    b = _run(tmp_path / "b", {"f1": (ids, truth, pb)}, {"other": {"f1": (["x1"], [1], [[0.42, 0.58]])}})
    table = str(tmp_path / "t.json")
    assert late_fusion.main(["--a", a, "--b", b, "--name", "t2", "--table", table, "--temperature-a", "2"]) == 0
    row = json.load(open(table))["rows"]["t2"]
    assert row["fusion"]["temperature_a"] == 2.0 and row["wa"]["mean"] == pytest.approx(1.0)
    assert row["unseen"]["other"]["wa"]["mean"] == pytest.approx(1.0)
    with pytest.raises(SystemExit):  # one or the other
        late_fusion.main(["--a", a, "--b", b, "--name", "x", "--table", table, "--temperature-a", "2",
                          "--calibrate-a", str(tmp_path)])
    with pytest.raises(SystemExit):
        late_fusion.main(["--a", a, "--b", b, "--name", "x", "--table", table, "--temperature-a", "0"])


def test_fusion_refuses_an_unfinished_seed_unless_the_finished_ones_are_named(tmp_path, capsys):
    import late_fusion

    p, ids, truth = [[0.9, 0.1], [0.2, 0.8]], ["u1", "u2"], [0, 1]
    for seed in (0, 1):
        _run(tmp_path / "a" / f"seed{seed}", {"f1": (ids, truth, p)}, {})
    b = _run(tmp_path / "b", {"f1": (ids, truth, p)}, {})
    (tmp_path / "a" / "seed2" / "folds" / "f1").mkdir(parents=True)  # killed in its first fold
    table, a = str(tmp_path / "t.json"), str(tmp_path / "a")
    with pytest.raises(SystemExit):
        late_fusion.main(["--a", a, "--b", b, "--name", "x", "--table", table])
    assert "seed2: no metrics.json (an unfinished run)" in capsys.readouterr().err
    assert not os.path.exists(table)
    assert late_fusion.main(["--a", a, "--b", b, "--name", "x", "--table", table, "--seeds", "0", "1"]) == 0
    assert json.load(open(table))["rows"]["x"]["seeds"] == [0, 1]
    with pytest.raises(SystemExit):
        late_fusion.main(["--a", a, "--b", b, "--name", "x", "--table", table, "--seeds", "0", "7"])
    assert "no run of seed(s) [7]" in capsys.readouterr().err


def test_temperature_transfer_chooses_on_the_cells_of_other_target_corpora():
    import temperature_transfer

    def cell(wa_t1, wa_t2):
        return {"per_seed": [{"hybrid_wa": {"1.0": wa_t1 + d, "2.0": wa_t2 + d}} for d in (-0.01, 0.01)]}

    # Cells towards x want T = 2; the cell towards y wants T = 1 on its own test data.
    cells = {"a->x": cell(0.40, 0.50), "b->x": cell(0.40, 0.44), "a->y": cell(0.60, 0.50)}
    got = temperature_transfer.choose(cells)
    assert got["a->y"][0] == 2.0 and got["a->y"][1] == pytest.approx(0.50)  # chosen on the x cells: not its own best
    assert got["a->x"][0] == 1.0 and got["a->x"][1] == pytest.approx(0.40)  # chosen on a->y alone
    assert got["a->y"][2] == pytest.approx(0.01414, rel=1e-3) and got["a->y"][3] == pytest.approx(0.60)
    with pytest.raises(ValueError, match="no cell with another target corpus"):
        temperature_transfer.choose({"a->x": cell(0.4, 0.5)})


def test_fusion_diagnostics_agreement_errors_confidence_and_temperature(tmp_path, capsys):
    import fusion_diagnostics

    truth, ids = [0, 0, 1, 1], ["u1", "u2", "u3", "u4"]
    # a says angry throughout (right on u1, u2), b sad throughout (right on u3, u4). The plain mean
    # gets u4 wrong, (1.05, 0.95); a's probabilities at T = 5 (power 1/5, renormalised) are flat
    # enough that b decides u4 while a still decides u1 and u2: 4 of 4.
    pa = [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.6, 0.4]]
    pb = [[0.4, 0.6], [0.45, 0.55], [0.1, 0.9], [0.45, 0.55]]
    for seed in (0, 1):
        _run(tmp_path / "a" / f"seed{seed}", {"f1": (ids, truth, pa)}, {})
    b = _run(tmp_path / "b", {"f1": (ids, truth, pb)}, {})  # one deterministic run, fused with each seed
    out = str(tmp_path / "d.json")
    assert fusion_diagnostics.main(["--pair", f"x={tmp_path / 'a'} {b}", "--temperatures", "1", "5", "--out", out]) == 0
    d = json.load(open(out))["pairs"]["x"]
    m = d["mean"]
    assert d["seeds"] == 2 and m["wa_a"] == pytest.approx(0.5) and m["wa_b"] == pytest.approx(0.5)
    assert m["agree"] == 0 and m["error_correlation"] == pytest.approx(-1.0)
    assert m["confidence_a"] == pytest.approx(0.725) and m["confidence_b"] == pytest.approx(0.65)
    assert m["hybrid_wa"] == {"1.0": pytest.approx(0.75), "5.0": pytest.approx(1.0)}
    assert "T=5.0: 100.0" in capsys.readouterr().out
    c = _run(tmp_path / "c", {"f1": (["u1", "u2", "u3", "u9"], truth, pb)}, {})
    with pytest.raises(SystemExit, match="different test utterances"):
        fusion_diagnostics.main(["--pair", f"x={b} {c}"])
    # a cross-corpus cell: the folds' predictions on an unseen corpus (a and b swapped there)
    ua = _run(tmp_path / "ua", {"f1": (ids, truth, pa)}, {"other": {"f1": (ids, truth, pb)}})
    ub = _run(tmp_path / "ub", {"f1": (ids, truth, pb)}, {"other": {"f1": (ids, truth, pa)}})
    assert fusion_diagnostics.main(["--pair", f"y={ua} {ub} @other", "--out", out]) == 0
    cell = json.load(open(out))["pairs"]["y"]
    assert cell["unseen"] == "other" and cell["mean"]["confidence_a"] == pytest.approx(0.65)
    for run in (ua, ub):  # an unseen corpus of unlabelled audio: said, not NaN
        path = os.path.join(run, "folds", "f1", "unseen", "other", "predictions.csv")
        pd.read_csv(path).assign(emotion=None).to_csv(path, index=False)
    with pytest.raises(SystemExit, match=r"other/predictions.csv: none of its utterances carries one of the model's"):
        fusion_diagnostics.main(["--pair", f"y={ua} {ub} @other"])


def test_fusion_reads_strengthnet_runs_through_their_emotion_head(tmp_path):
    """StrengthNet writes `test_predictions.csv` (strength columns beside the emotion head's
    `score_<emotion>`); a run from before those columns existed is refused by name."""
    import late_fusion

    truth, ids = [0, 0, 1, 1], ["u1", "u2", "u3", "u4"]
    a = _run(tmp_path / "a", {"f1": (ids, truth, [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.9, 0.1]])}, {})
    os.rename(os.path.join(a, "folds", "f1", "predictions.csv"), os.path.join(a, "folds", "f1", "test_predictions.csv"))
    b = _run(tmp_path / "b", {"f1": (ids, truth, [[0.4, 0.6], [0.45, 0.55], [0.1, 0.9], [0.4, 0.6]])}, {})
    table = str(tmp_path / "table.json")
    assert late_fusion.main(["--a", a, "--b", b, "--name", "sn", "--table", table]) == 0
    assert json.load(open(table))["rows"]["sn"]["wa"]["mean"] == pytest.approx(0.75)
    path = os.path.join(a, "folds", "f1", "test_predictions.csv")
    pd.read_csv(path).drop(columns=["score_angry", "score_sad"]).to_csv(path, index=False)
    with pytest.raises(SystemExit, match="test_predictions.csv has no class probabilities"):
        late_fusion.main(["--a", a, "--b", b, "--name", "sn", "--table", table])


def test_epr_network_probe_refuses_to_choose_on_what_it_stops_on(tmp_path, capsys):
    """A candidate that early-stops on the development utterances cannot be scored on them."""
    import epr_network_probe

    folds = tmp_path / "folds.json"
    folds.write_text(json.dumps({"folds": [{"name": "f1", "train": ["a"], "dev": ["b"], "test": ["c"]}]}))
    args = ["--folds-file", str(folds), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out.json")]
    with pytest.raises(SystemExit):
        epr_network_probe.main(["--candidate", "paper=epr/synthetic", *args])
    assert "train.select=best stops on the development utterances" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        epr_network_probe.main(["--candidate", "x=mlee/synthetic train.select=last", *args])
    assert "is not an EPR preset" in capsys.readouterr().err


def test_seeds_table_refuses_to_drop_a_rows_seeds(tmp_path, capsys):
    """A row is rebuilt from the seeds of the invocation: one that would drop seeds already in the
    table is refused before anything runs (the row's mean would silently rest on fewer seeds)."""
    import seeds_table

    out = tmp_path / "table.json"
    out.write_text(json.dumps({"rows": {"r": {"preset": "fg_cme/synthetic", "overrides": ["train.epochs=1"],
                                              "seeds": [0, 1]}}}))
    with pytest.raises(SystemExit):
        seeds_table.main(["--row", "r=fg_cme/synthetic train.epochs=1", "--seeds", "1", "2",
                          "--runs", str(tmp_path / "runs"), "--out", str(out)])
    assert "row 'r' of" in (err := capsys.readouterr().err) and "holds seeds [0, 1]" in err and "would drop" in err
    assert not (tmp_path / "runs").exists()


def test_seeds_table_reads_strengthnet_runs():
    """A StrengthNet row: WA / UA are its emotion head's, and its strength metrics and the
    intensity AUC are averaged over seeds and kept per fold."""
    import seeds_table

    def run(wa, auc):
        ms = lambda v: {"mean": v, "sd": 0.0}  # noqa: E731
        fold = {"fold": "f1", "overall": {"mae": 0.07, "srcc": 0.3}, "emotion": {"wa": wa, "ua": wa - 0.01},
                "intensity": {"auc": auc, "labels_auc": 0.8}}
        return {"mean": {"mae": ms(0.07), "emotion_wa": ms(wa), "emotion_ua": ms(wa - 0.01), "intensity_auc": ms(auc)},
                "folds": [fold]}

    runs = [run(0.6, 0.7), run(0.7, 0.9)]
    out = seeds_table.summarise(runs)
    assert out["wa"]["mean"] == pytest.approx(0.65) and out["ua"]["mean"] == pytest.approx(0.64)
    assert out["intensity_auc"]["mean"] == pytest.approx(0.8) and out["intensity_auc"]["sd"] == pytest.approx(0.1414, abs=1e-4)
    assert seeds_table.fold_scores(runs[1]["folds"][0]) == {"fold": "f1", "wa": 0.7, "ua": 0.69, "mae": 0.07, "srcc": 0.3,
                                                            "intensity_auc": 0.9, "intensity_labels_auc": 0.8}
    assert seeds_table.fold_scores({"fold": "f", "wa": 0.5, "ua": 0.4}) == {"fold": "f", "wa": 0.5, "ua": 0.4}


def _seed_row(seeds, wa, folds=("f1", "f2"), preset="epr/emodb_recipe"):
    return {"preset": preset, "overrides": [], "system": "epr", "normalization": "train", "protocol": "kfold",
            "folds": len(folds), "seeds": list(seeds), "wa": {"mean": float(np.mean(wa)), "sd": 0.0, "n": len(wa)},
            "ua": {"mean": float(np.mean(wa)), "sd": 0.0, "n": len(wa)},
            "macro_f1": {"mean": 0.5, "sd": 0.0, "n": len(wa)},
            "pooled_wa": {"mean": float(np.mean(wa)), "sd": 0.0, "n": len(wa)},
            "per_seed": [{"seed": s, "wa": w, "ua": w - 0.01, "pooled": {"wa": w + 0.01, "ua": w, "n": 10},
                          "per_fold": [{"fold": f, "wa": w, "ua": w} for f in folds]} for s, w in zip(seeds, wa)]}


def test_merge_seeds_recomputes_the_row_over_the_union_of_seeds(tmp_path, capsys):
    import merge_seeds

    def tables(old, new, folds_file="runs/ref/folds.json"):
        for name, row in (("table", old), ("source", new)):
            (tmp_path / f"{name}.json").write_text(json.dumps({"folds_file": folds_file, "seeds": row["seeds"],
                                                               "rows": {"epr": row}}))
        return ["--table", str(tmp_path / "table.json"), "--source", str(tmp_path / "source.json"), "--row", "epr"]

    assert merge_seeds.main(tables(_seed_row([0, 1], [0.80, 0.84]), _seed_row([2], [0.88]))) == 0
    row = json.loads((tmp_path / "table.json").read_text())["rows"]["epr"]
    assert row["seeds"] == [0, 1, 2] and [s["seed"] for s in row["per_seed"]] == [0, 1, 2]
    assert row["wa"]["n"] == 3 and row["wa"]["mean"] == pytest.approx(0.84) and row["wa"]["sd"] == pytest.approx(0.04)
    assert row["ua"]["mean"] == pytest.approx(0.83) and row["pooled_wa"]["mean"] == pytest.approx(0.85)
    assert "macro_f1" not in row and "dropped, not kept per seed: macro_f1" in capsys.readouterr().out
    refused = [(([0, 1], [0.8, 0.8]), ([1], [0.9]), {}, "seed(s) [1] in both tables"),
               (([0], [0.8]), ([1], [0.9]), {"preset": "epr/emodb"}, "preset differs"),
               (([0], [0.8]), ([1], [0.9]), {"folds": ("f1", "f3")}, "scored on other folds")]
    for old, new, change, message in refused:
        args = tables(_seed_row(*old), _seed_row(*new, **change))
        before = (tmp_path / "table.json").read_text()
        with pytest.raises(SystemExit):
            merge_seeds.main(args)
        assert message in capsys.readouterr().err and (tmp_path / "table.json").read_text() == before
    args = tables(_seed_row([0], [0.8]), _seed_row([1], [0.9]))
    (tmp_path / "source.json").write_text((tmp_path / "source.json").read_text().replace("runs/ref", "runs/other"))
    with pytest.raises(SystemExit):
        merge_seeds.main(args)
    assert "scored on other folds: runs/ref/folds.json / runs/other/folds.json" in capsys.readouterr().err


def test_merge_seeds_merges_unseen_corpora_kept_per_seed(tmp_path, capsys):
    """A cross-corpus row (`seeds_table.py` keeps each seed's WA / UA on each unseen corpus) merges
    like any row; one whose seeds did not keep them, or that scores its unseen corpus otherwise,
    is refused."""
    import merge_seeds
    import seeds_table

    def run(wa, ravdess):
        unseen = {"ravdess": {"mean": {"wa": {"mean": ravdess}, "ua": {"mean": ravdess - 0.02}}, "n": 80,
                              "missing_labels": [], "normalization": "corpus", "adapt": None},
                  "unlabelled": {"n": 0, "missing_labels": [], "normalization": "corpus"}}
        return {"mean": {"wa": {"mean": wa}, "ua": {"mean": wa}}, "unseen": unseen}

    assert seeds_table.seed_unseen(run(0.8, 0.5)) == {"unseen": {"ravdess": {"wa": 0.5, "ua": 0.48}}}
    summary = seeds_table.summarise([run(0.8, 0.5), run(0.8, 0.4)])
    assert list(summary["unseen"]) == ["ravdess"] and summary["unseen"]["ravdess"]["wa"]["mean"] == pytest.approx(0.45)

    def row(seeds, unseen_wa, keep=True, normalization="corpus"):
        r = _seed_row(seeds, [0.8] * len(seeds))
        r["unseen"] = {"ravdess": {"wa": seeds_table.ms(unseen_wa), "ua": seeds_table.ms(unseen_wa), "n": 80,
                                   "missing_labels": [], "normalization": normalization, "adapt": None}}
        for s, w in zip(r["per_seed"], unseen_wa):
            if keep:
                s["unseen"] = {"ravdess": {"wa": w, "ua": w}}
        return r

    def tables(old, new):
        for name, r in (("table", old), ("source", new)):
            (tmp_path / f"{name}.json").write_text(json.dumps({"folds_file": None, "rows": {"cross": r}}))
        return ["--table", str(tmp_path / "table.json"), "--source", str(tmp_path / "source.json"), "--row", "cross"]

    assert merge_seeds.main(tables(row([0, 1], [0.4, 0.5]), row([2], [0.6]))) == 0
    merged = json.loads((tmp_path / "table.json").read_text())["rows"]["cross"]["unseen"]["ravdess"]
    assert merged["wa"]["mean"] == pytest.approx(0.5) and merged["wa"]["n"] == 3 and merged["normalization"] == "corpus"
    for old, new, message in ((row([0], [0.4], keep=False), row([1], [0.5]), "seed(s) [0] kept no per-seed numbers"),
                              (row([0], [0.4]), row([1], [0.5], normalization="train"), "normalization differs")):
        with pytest.raises(SystemExit):
            merge_seeds.main(tables(old, new))
        assert message in capsys.readouterr().err


def _strength_run(root, seed, epochs, shift=0.0, pure_srcc=None, normalization="speaker"):
    """A finished one-fold StrengthNet run on a synthetic corpus: two emotions of 4 pure utterances
    each, ordered right within each emotion, the sad ones predicted `shift` higher than the truth."""
    fold = root / "folds" / "split-seed0"
    (fold / "strengthnet").mkdir(parents=True)
    truth = [0.2, 0.4, 0.6, 0.8, 0.3, 0.5, 0.7, 0.9]
    emotion = ["angry"] * 4 + ["sad"] * 4
    pred = [0.1, 0.3, 0.5, 0.7] + [t + shift for t in truth[4:]]
    pd.DataFrame({"utterance_id": [f"u{i}" for i in range(8)], "emotion": emotion,
                  "predicted_emotion": ["angry"] * 3 + ["sad"] * 5, "strength_label": truth,
                  "predicted_strength": pred, "true_strength": truth, "pure": True, "blend": False,
                  "change": False}).to_csv(fold / "test_predictions.csv", index=False)
    pd.DataFrame({"epoch": [0, 1], "strength_mae": [0.2, 0.1], "emotion_acc": [0.5, 0.75]}).to_csv(
        fold / "strengthnet" / "history.csv", index=False)
    from keras_ser.training.metrics import spearman
    pure = spearman(truth, pred) if pure_srcc is None else pure_srcc
    (root / "config.yaml").write_text(f"system: strengthnet\nseed: {seed}\ntrain:\n  epochs: {epochs}\n"
                                      f"data:\n  normalization: {normalization}\nstrength:\n  labels: manifest\n")
    (root / "metrics.json").write_text(json.dumps({"folds_run": 1, "fold_seconds": 12.0, "folds": [{
        "fold": "split-seed0", "overall": {"mae": 0.05}, "emotion": {"wa": 0.875}, "srcc_vs_truth": 0.9,
        "srcc_vs_truth_pure": pure, "srcc_vs_truth_blend": 0.8, "srcc_vs_truth_change": 0.7}]}))
    return str(root)


def test_strengthnet_truth_runs_adds_seeds_to_a_table_and_bounds_per_emotion_maps(tmp_path, capsys):
    """Per run: the pure utterances' SRCC per emotion, the emotion head's hits, the per-emotion
    linear map's bound (1 when every emotion is ordered right but offset); a table's runs stay
    when their folders are gone, a seed is not added twice, and the pure SRCC read from the
    predictions must be the one the fold scored."""
    import strengthnet_truth_runs as T

    table = str(tmp_path / "table.json")
    a = _strength_run(tmp_path / "a", seed=0, epochs=40, shift=0.5)
    assert T.main([table, a, "--about", "test runs"]) == 0
    got = json.load(open(table))
    run = got["epochs"]["40"]["runs"][0]
    assert run["pure_per_emotion"] == {"angry": pytest.approx(1.0), "sad": pytest.approx(1.0)}
    assert run["srcc_vs_truth_pure"] < 0.9 and run["pure_per_emotion_linear_map_test_fitted"] == pytest.approx(1.0)
    assert (run["pure_emotion_head_right"], run["pure_n"], run["seed"]) == (7, 8, 0)
    assert (run["train_strength_mae_last_epoch"], run["train_emotion_acc_last_epoch"], run["seconds"]) == (0.1, 0.75, 12.0)
    assert got["about"] == "test runs" and got["epochs"]["40"]["seeds"] == 1
    shutil.rmtree(a)  # the first seed's folder is gone; a second seed is added beside it
    b = _strength_run(tmp_path / "b", seed=1, epochs=40, shift=0.0)
    assert T.main([table, b]) == 0
    got = json.load(open(table))
    assert got["about"] == "test runs" and [r["seed"] for r in got["epochs"]["40"]["runs"]] == [0, 1]
    pure = [r["srcc_vs_truth_pure"] for r in got["epochs"]["40"]["runs"]]
    assert got["epochs"]["40"]["mean"]["srcc_vs_truth_pure"] == {
        "mean": pytest.approx(np.mean(pure), abs=1e-4), "sd": pytest.approx(np.std(pure, ddof=1), abs=1e-4)}
    before = open(table).read()
    c = _strength_run(tmp_path / "c", seed=1, epochs=40)
    d = _strength_run(tmp_path / "d", seed=2, epochs=30, pure_srcc=0.5)
    e = _strength_run(tmp_path / "e", seed=3, epochs=40, normalization="train")
    for args, message in (([c], "holds seed 1 at 40 epochs already"), ([d], "is not the fold's"),
                          ([e], "has normalization 'train', the table's runs speaker"),
                          ([str(tmp_path / "none")], "no metrics.json")):
        assert T.main([table, *args]) == 2
        assert message in capsys.readouterr().err and open(table).read() == before
    assert T.main([table, c, "--replace"]) == 0


def test_strength_reference_chooses_its_penalty_on_inner_folds_and_fuses_with_strengthnet(tmp_path, tiny_corpus):
    """The ridge reference for StrengthNet's strength: per outer fold, the penalty with the best
    mean inner-fold score (held-out training speakers only), one prediction per test utterance;
    the fusion averages the two strengths standardised over a fold's test utterances, and refuses
    runs scored on other utterances or other labels."""
    import strength_reference as R
    from sklearn.metrics import roc_auc_score

    from keras_ser.corpora.manifest import save_manifest

    man = tiny_corpus.manifest.copy()
    emotional = man["emotion"] != "neutral"
    median = man[emotional].groupby("emotion")["strength"].transform("median")
    man["intensity"] = None
    man.loc[emotional, "intensity"] = np.where(man.loc[emotional, "strength"] >= median, "strong", "normal")
    save_manifest(man, str(tmp_path / "m.jsonl"))
    speakers = sorted(man["speaker"].unique())
    emo_ids = man[emotional]
    folds = [{"name": f"fold{i + 1}", "dev": [], "dev_from_train": False,
              "test": emo_ids.loc[emo_ids["speaker"] == s, "utterance_id"].tolist(),
              "train": emo_ids.loc[emo_ids["speaker"] != s, "utterance_id"].tolist()} for i, s in enumerate(speakers)]
    folds_file = tmp_path / "folds.json"
    folds_file.write_text(json.dumps({"protocol": "kfold", "group": "speaker", "folds": folds}))
    common = ["strengthnet/synthetic", "data.corpus=manifest", f"data.root={tmp_path / 'm.jsonl'}",
              "data.num_workers=1", "data.normalization=speaker", "--folds-file", str(folds_file)]
    out = tmp_path / "ref.json"
    R.main([*common, "--runs", str(tmp_path / "ref"), "--out", str(out)])
    doc = json.load(open(out))
    assert doc["normalization"] == "speaker" and len(doc["folds"]) == len(speakers)
    for fold, res in zip(folds, doc["folds"]):
        inner = {float(a): s["srcc"] for a, s in res["inner"].items()}
        assert sorted(inner) == sorted(R.ALPHAS) and res["alpha"] == max(inner, key=inner.get)
        pred = pd.read_csv(tmp_path / "ref" / "folds" / fold["name"] / "test_predictions.csv")
        assert sorted(pred["utterance_id"]) == sorted(fold["test"]) and pred["predicted_strength"].std() > 0
        assert res["labels"]["intensity_auc"] == pytest.approx(
            roc_auc_score(pred["intensity"] == "strong", pred["strength_label"]))
        assert res["labels_training"]["n"] == len(fold["train"]) and "intensity_auc" in res["labels_training"]

    # the run's own input pooled instead (StrengthNet's 80 log-mel bands: 5 statistics each)
    R.main([*common, "--runs", str(tmp_path / "frames"), "--out", str(tmp_path / "frames.json"), "--features", "frames"])
    frames = json.load(open(tmp_path / "frames.json"))
    assert frames["features"] == "frames" and frames["feature_set"] == "pooled strengthnet" and frames["dim"] == 400
    assert doc["dim"] == 384  # IS09
    assert [r["fold"] for r in frames["folds"]] == [f["name"] for f in folds]
    assert frames["folds"][0]["overall"] != doc["folds"][0]["overall"]

    # a StrengthNet row: seed 0 predicts the labels themselves, seed 1 their reverse
    for seed, sign in ((0, 1.0), (1, -1.0)):
        for fold in folds:
            ref = pd.read_csv(tmp_path / "ref" / "folds" / fold["name"] / "test_predictions.csv")
            path = tmp_path / "sn" / f"seed{seed}" / "folds" / fold["name"] / "test_predictions.csv"
            os.makedirs(path.parent, exist_ok=True)
            ref.assign(predicted_strength=sign * ref["strength_label"], predicted_emotion=ref["emotion"]).to_csv(
                path, index=False)
    R.main([*common, "--runs", str(tmp_path / "ref"), "--out", str(out), "--fuse", str(tmp_path / "sn")])
    fusion = json.load(open(out))["fusion"]
    labels_auc = np.mean([r["labels"]["intensity_auc"] for r in doc["folds"]])
    seed0, seed1 = fusion["per_seed"]
    assert seed0["strengthnet"]["intensity_auc"] == pytest.approx(labels_auc)
    assert seed1["strengthnet"]["intensity_auc"] == pytest.approx(1 - labels_auc)
    assert "mae" not in seed0["fused"] and seed0["emotion_wa"] == 1.0
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    by_hand = []
    for fold in folds:
        ref = pd.read_csv(tmp_path / "ref" / "folds" / fold["name"] / "test_predictions.csv")
        fused = 0.5 * z(ref["strength_label"]) + 0.5 * z(ref["predicted_strength"])
        by_hand.append(roc_auc_score(ref["intensity"] == "strong", fused))
    assert seed0["fused"]["intensity_auc"] == pytest.approx(np.mean(by_hand))
    assert fusion["summary"]["strengthnet"]["intensity_auc"]["n"] == 2

    # the seeds as one model: their standardised strengths averaged, per fold (seed 2: the labels
    # plus a fixed wobble, its rows shuffled: averaged by utterance, not by row)
    for fold in folds:
        ref = pd.read_csv(tmp_path / "ref" / "folds" / fold["name"] / "test_predictions.csv")
        wobble = np.cos(np.arange(len(ref)) * 1.7)
        path = tmp_path / "sn" / "seed2" / "folds" / fold["name"] / "test_predictions.csv"
        os.makedirs(path.parent, exist_ok=True)
        ref.assign(predicted_strength=3 * ref["strength_label"] + wobble, predicted_emotion=ref["emotion"]).iloc[::-1].to_csv(
            path, index=False)
    R.main([*common, "--runs", str(tmp_path / "ref"), "--out", str(out), "--fuse", str(tmp_path / "sn"), "--ensemble"])
    ensemble = {tuple(e["seeds"]): e for e in json.load(open(out))["fusion"]["ensemble"]}
    assert sorted(ensemble) == [(0, 1), (0, 1, 2), (0, 2), (1, 2)]
    assert ensemble[(0, 1)]["strengthnet"]["intensity_auc"] == pytest.approx(0.5)  # a seed and its reverse cancel
    by_hand, fused_by_hand = [], []
    for fold in folds:
        ref = pd.read_csv(tmp_path / "ref" / "folds" / fold["name"] / "test_predictions.csv")
        wobble = np.cos(np.arange(len(ref)) * 1.7)
        mean = 0.5 * z(ref["strength_label"]) + 0.5 * z(3 * ref["strength_label"] + wobble)
        by_hand.append(roc_auc_score(ref["intensity"] == "strong", mean))
        fused_by_hand.append(roc_auc_score(ref["intensity"] == "strong", 0.5 * z(mean) + 0.5 * z(ref["predicted_strength"])))
    assert ensemble[(0, 2)]["strengthnet"]["intensity_auc"] == pytest.approx(np.mean(by_hand))
    assert ensemble[(0, 2)]["fused"]["intensity_auc"] == pytest.approx(np.mean(fused_by_hand))
    with pytest.raises(SystemExit, match="two or more seeds"):
        R.main([*common, "--runs", str(tmp_path / "ref"), "--out", str(out), "--fuse", str(tmp_path / "sn" / "seed0"),
                "--ensemble"])
    shutil.rmtree(tmp_path / "sn" / "seed2")

    # other utterances, other labels: refused
    first = tmp_path / "sn" / "seed0" / "folds" / folds[0]["name"] / "test_predictions.csv"
    good = pd.read_csv(first)
    good.iloc[1:].to_csv(first, index=False)
    with pytest.raises(SystemExit, match="different test utterances"):
        R.main([*common, "--runs", str(tmp_path / "ref"), "--out", str(out), "--fuse", str(tmp_path / "sn")])
    good.assign(strength_label=good["strength_label"] + 0.1).to_csv(first, index=False)
    with pytest.raises(SystemExit, match="strength labels differ"):
        R.main([*common, "--runs", str(tmp_path / "ref"), "--out", str(out), "--fuse", str(tmp_path / "sn")])
