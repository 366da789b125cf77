"""Every preset, smoke-run for one epoch of one fold on the tiny synthetic corpus (SpeechBrain's
recipe tests): the preset's frontend, protocol, recipe and training settings, with the corpus,
the label set and the model's size made tiny. Every system's synthetic preset runs end to end in
CI: here, or (the same preset, made as tiny) in the system's notebook (tests/test_notebooks*.py),
which then does more with the run. The others are marked slow (`pytest -m slow`)."""

import os

import pytest

from keras_ser.config import list_presets, load_config

TINY_MODELS = {
    "mlee": "{conv_blocks: [[4, [12, 16], [2, 2]], [4, [8, 12], [1, 1]], [4, [5, 7], [1, 1]]], lstm_units: 8, attention_units: 8}",
    "strengthnet": "{filters: [4, 4, 8, 8], lstm_units: 8, dense_units: 8}",
    "epr": "{config: A, width: 0.0625, dense_units: [16], dropout: 0.0}",
    "fg_cme": "{conv_filters: [8, 8, 8], lstm_units: 8, semantic_units: 8, hidden_units: 8, embedding_dim: 8}",
    "functionals": "{}",
}
SYNTHETIC_EMOTIONS = {"neutral", "happy", "sad", "angry", "surprise"}


def smoke_overrides(preset, root, tmp):
    """What makes `preset` tiny: everything else is the preset's own."""
    cfg = load_config(preset)
    emotions = [e for e in cfg.data.emotions if e in SYNTHETIC_EMOTIONS]
    out = ["data.corpus=synthetic", f"data.root={root}", "data.synthetic_size=tiny", "data.fuse=[]",
           "data.eval_corpora=[]", f"data.emotions=[{', '.join(emotions)}]", "data.num_workers=1",
           f"data.records_dir={tmp}/records", f"output_dir={tmp}/run", f"model.params={TINY_MODELS[cfg.system]}",
           "train.epochs=1", "train.verbose=0", "protocol.max_folds=1", "train.batch_size=16",
           "protocol.min_fold_utterances=2"]  # 10-fold on 52 utterances: some test folds hold 4
    if cfg.protocol.name == "kfold" and cfg.protocol.group:
        out.append("protocol.k=4")  # the tiny corpus has 4 speakers
    if cfg.protocol.name == "loso_session":
        out.append("protocol.name=loso")  # it has no sessions
    if cfg.system == "epr":
        out += ["epr.stages=2", "epr.inner_folds=2", "epr.segment_hop=4"]
    if cfg.system == "strengthnet":
        out.append("strength.labels=manifest")  # the ranking labels run in tests/test_strengthnet.py
    return out


NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")


def _run_by_a_notebook(preset):
    """Whether a notebook (executed in CI) trains `preset`."""
    import glob
    import json

    cells = [c for p in glob.glob(os.path.join(NOTEBOOKS, "*.ipynb")) for c in json.load(open(p))["cells"]]
    return any(f'load_config("{preset}"' in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def _params():
    out = []
    for preset in list_presets():
        in_ci = preset.endswith("/synthetic") and not _run_by_a_notebook(preset)
        out.append(pytest.param(preset, marks=() if in_ci else (pytest.mark.slow,), id=preset))
    return out


@pytest.mark.parametrize("preset", _params())
def test_preset_smoke_run(preset, tiny_corpus, tmp_path):
    from keras_ser.training.runner import run

    root = os.path.dirname(os.path.dirname(tiny_corpus.manifest["path"].iloc[0]))
    cfg = load_config(preset, smoke_overrides(preset, root, tmp_path))
    summary = run(cfg)
    assert summary["folds_run"] == 1 and summary["system"] == cfg.system
    for f in ("config.yaml", "metrics.json"):
        assert os.path.exists(tmp_path / "run" / f), f
    if cfg.export.enabled:
        assert os.path.exists(os.path.join(summary["export"], "saved_model.pb"))
        assert os.path.exists(os.path.join(summary["export"], "keras_ser.json"))


def test_every_system_s_synthetic_preset_runs_in_ci():
    systems = {p.split("/")[0] for p in list_presets()}
    assert {f"{s}/synthetic" for s in systems} <= set(list_presets())
    in_ci = [p.id for p in _params() if not p.marks]
    assert [s for s in sorted(systems) if f"{s}/synthetic" not in in_ci and not _run_by_a_notebook(f"{s}/synthetic")] == []
    assert _run_by_a_notebook("epr/synthetic") and not _run_by_a_notebook("epr/emodb")
