"""FG_CME building blocks: alignment readers and checks, the approximate aligner, the vocabulary,
GloVe loading, alignment pooling, cross-modality excitation and the model's masking."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_ser.config import load_config
from keras_ser.corpora.alignments import (
    approximate_alignment,
    check_alignment,
    read_ctm,
    read_word_json,
    voiced_region,
)
from keras_ser.errors import AlignmentError, CorpusError
from keras_ser.models.fg_cme import build_baseline, build_fg_cme
from keras_ser.text import OOV_ID, PAD_ID, Vocabulary, load_embeddings
from tests.harness import check_exports, model_case, pad_batch, run_case, single


def test_ctm_and_json_readers(tmp_path):
    ctm = tmp_path / "a.ctm"
    ctm.write_text(";; comment\nu1 1 0.30 0.20 kids 0.9\nu1 1 0.10 0.15 <sil>\nu1 1 0.55 0.10 are\nu2 A 0 0.5 hi\n")
    assert read_ctm(ctm) == {"u1": [("kids", 0.3, 0.5), ("are", 0.55, pytest.approx(0.65))], "u2": [("hi", 0.0, 0.5)]}
    (tmp_path / "bad.ctm").write_text("u1 1 0.3 kids\n")
    with pytest.raises(AlignmentError, match=r"bad.ctm:1"):
        read_ctm(tmp_path / "bad.ctm")
    words = [{"word": " Kids", "start": 0.1, "end": 0.4}, {"text": "are", "start": 0.4, "end": 0.6}]
    for i, doc in enumerate(({"words": words}, {"segments": [{"words": words}]}, words)):
        p = tmp_path / f"w{i}.json"
        p.write_text(json.dumps(doc))
        assert read_word_json(p) == [("Kids", 0.1, 0.4), ("are", 0.4, 0.6)]
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"words": [{"word": "x", "start": 0.5, "end": 0.2}]}))
    with pytest.raises(AlignmentError, match=r"bad.json: word 0 'x' ends"):
        read_word_json(p)


def test_alignment_must_match_its_transcript():
    words = [("Kids", 0.1, 0.4), ("are", 0.4, 0.6), ("talking", 0.6, 1.0)]
    assert check_alignment(words, "kids are talking.", "x.TextGrid", duration=1.2) is words
    with pytest.raises(AlignmentError, match=r"x.TextGrid: .* word 3"):
        check_alignment(words, "Kids are walking", "x.TextGrid")
    with pytest.raises(AlignmentError, match=r"3 vs 4 words"):
        check_alignment(words, "Kids are talking loudly", "x.TextGrid")
    with pytest.raises(AlignmentError, match="after the audio"):
        check_alignment(words, "kids are talking", "x.TextGrid", duration=0.8)


def test_approximate_alignment_spreads_words_over_the_voiced_region():
    sr = 16000
    rng = np.random.default_rng(0)
    w = np.zeros(2 * sr, np.float32)
    w[int(0.5 * sr): int(1.5 * sr)] = 0.3 * rng.standard_normal(sr)  # speech from 0.5 s to 1.5 s
    start, end = voiced_region(w, sr)
    assert start == pytest.approx(0.5, abs=0.03) and end == pytest.approx(1.5, abs=0.04)
    words = approximate_alignment("Dogs are sitting by the door", w, sr)
    assert [x[0] for x in words] == ["dogs", "are", "sitting", "by", "the", "door"]
    assert words[0][1] == pytest.approx(start, abs=1e-3) and words[-1][2] == pytest.approx(end, abs=1e-3)
    dur = np.array([e - s for _, s, e in words])
    np.testing.assert_allclose(dur / dur.sum(), np.array([5, 4, 8, 3, 4, 5]) / 29, atol=1e-3)
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(words, words[1:]))


def test_vocabulary_has_a_real_oov_token(tmp_path):
    v = Vocabulary.build(["Kids are talking by the door.", "Dogs are sitting by the door", "kids"], min_count=2)
    assert v.tokens[:2] == ["<pad>", "<unk>"] and "sitting" not in v.index
    ids = v.ids(["kids", "SITTING", "door!"])
    assert ids[1] == OOV_ID != PAD_ID and ids[0] > 1 and ids[2] > 1
    v.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").tokens == v.tokens


def test_glove_file_fills_known_words(tmp_path):
    v = Vocabulary(["kids", "door", "absent"])
    p = tmp_path / "glove.txt"
    p.write_text("the 0.1 0.2 0.3\nKids 1 2 3\nkids 9 9 9\ndoor -1 -2 -3\n")
    m, found = load_embeddings(p, v)
    assert m.shape == (5, 3) and found == 2
    np.testing.assert_array_equal(m[v.index["kids"]], [1, 2, 3])  # the first occurrence wins
    np.testing.assert_array_equal(m[PAD_ID], 0)
    assert np.abs(m[v.index["absent"]]).max() < 1  # random, trainable
    (tmp_path / "bad.txt").write_text("kids 1 2 3\ndoor 1 2\n")
    with pytest.raises(CorpusError, match=r"bad.txt:2: 2 values, expected 3"):
        load_embeddings(tmp_path / "bad.txt", v)


def test_alignment_pooling_by_hand():
    from keras_ser.layers.fusion import AlignmentPooling, WordAlignment

    frames = np.arange(2 * 6 * 2, dtype="float32").reshape(2, 6, 2)
    frames[0, 2, 0] = -50.0
    # Frame t is centred at t * 0.01 + 0.0125 s. Word 0: frames 0-2; word 1: frames 3-4;
    # word 2 lies between frame centres (empty); utterance 2 has one word and 4 real frames.
    starts = np.array([[0.0, 0.04, 0.0551], [0.0, 0.0, 0.0]], "float32")
    ends = np.array([[0.035, 0.06, 0.0599], [1.0, 0.0, 0.0]], "float32")
    a = WordAlignment(0.01, 0.025)(starts, ends, np.array([3, 1]), np.array([6, 4]), frames)
    np.testing.assert_array_equal(a[0], [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(a[1], [[1, 1, 1, 1, 0, 0], [0] * 6, [0] * 6])
    pooled = np.asarray(AlignmentPooling()(frames, a))
    f = frames
    np.testing.assert_allclose(pooled[0, 0], np.r_[f[0, :3].mean(0), f[0, :3].max(0)])
    np.testing.assert_allclose(pooled[0, 1], np.r_[f[0, 3:5].mean(0), f[0, 3:5].max(0)])
    np.testing.assert_array_equal(pooled[0, 2], 0)  # an empty word is zeros, not -1e6
    np.testing.assert_allclose(pooled[1, 0], np.r_[f[1, :4].mean(0), f[1, :4].max(0)])
    assert pooled[0, 0, 2] == f[0, 1, 0]  # the max of (0, 2, -50): over the word's frames only


def test_cross_modality_excitation_paper_form_and_ablations():
    from keras_ser.layers.fusion import CrossModalityExcitation

    rng = np.random.default_rng(0)
    za = rng.standard_normal((2, 3, 4)).astype("float32")
    zs = rng.standard_normal((2, 3, 5)).astype("float32")
    cme = CrossModalityExcitation()
    a, s = cme(za, zs)

    def sig(x):
        return 1 / (1 + np.exp(-x))

    we, be = (np.asarray(w) for w in cme.w_e.weights)
    wa, ba = (np.asarray(w) for w in cme.w_a.weights)
    np.testing.assert_allclose(a, sig(zs @ we + be) * za, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s, sig(za @ wa + ba) * zs, rtol=1e-5, atol=1e-6)
    a, s = CrossModalityExcitation(excite_acoustic=False, excite_semantic=False)(za, zs)
    np.testing.assert_array_equal(a, za)
    np.testing.assert_array_equal(s, zs)
    res = CrossModalityExcitation(residual=True, acoustic_gate="word_id", vocab_size=7)
    a, _ = res(za, zs, np.array([[2, 3, 1], [1, 0, 0]]))
    table = np.asarray(res.gate_table.embeddings)
    np.testing.assert_allclose(a[0, 0], za[0, 0] + sig(table[2]) * za[0, 0], rtol=1e-5)


def _fg_examples():
    """Two utterances with their words: ids (1 = out of vocabulary, still a word), starts, ends."""
    rng = np.random.default_rng(0)
    words = [([3, 1, 5], [0.05, 0.4, 0.8], [0.4, 0.8, 1.15]), ([4, 2], [0.0, 0.3], [0.3, 0.65])]
    return [{"features": rng.standard_normal((n, 40)).astype("float32"), "num_frames": np.int32(n),
             "word_ids": np.array(ids, "int32"), "word_starts": np.array(s, "float32"),
             "word_ends": np.array(e, "float32"), "num_words": np.int32(len(ids))}
            for n, (ids, s, e) in zip((120, 70), words)]


FG = _fg_examples()
WORDS = {"time": {"features": "num_frames", "word_ids": "num_words", "word_starts": "num_words",
                  "word_ends": "num_words"}}
SMALL_FG = dict(num_classes=4, feature_dim=40, vocab_size=10, embedding_dim=8, conv_filters=(8, 8, 8), lstm_units=8,
                hidden_units=8)


def _inputs(kind):
    audio, text = ["features", "num_frames"], ["word_ids", "num_words"]
    return {"cnn_lstm": audio, "blstm_attention_audio": audio, "blstm_attention_text": text,
            "cnn_pool": audio}.get(kind, audio + text)


CASES = [
    model_case("fg_cme", build_fg_cme, dict(semantic_units=16, **SMALL_FG), FG, **WORDS),
    model_case("fg_cme_utterance_norm", build_fg_cme, dict(semantic_units=16, utterance_norm="meanvar", **SMALL_FG),
               FG, export=False, **WORDS),
    model_case("fg_cme_code_v2", build_fg_cme, dict(semantic_units=16, residual=True, acoustic_gate="word_id", widen=3,
                                                    conv_activation=None, **SMALL_FG), FG, export=False, **WORDS),
] + [model_case(kind, build_baseline, dict(kind=kind, attention_units=8, **SMALL_FG),
                [{k: v for k, v in ex.items() if k in _inputs(kind)} for ex in FG],
                time={k: v for k, v in WORDS["time"].items() if k in _inputs(kind)},
                export=kind in ("cnn_lstm", "attention_fusion", "cnn_pool"))  # every baseline layer is in one of these
     for kind in ("cnn_lstm", "blstm_attention_audio", "blstm_attention_text", "utterance_concat", "attention_fusion",
                  "cnn_pool")] + [
    # a random channel in training (not the paper's): inference and padding are unaffected
    model_case("cnn_pool_channel_augment", build_baseline, dict(kind="cnn_pool", channel_augment={"seed": 1}, **SMALL_FG),
               [{"features": ex["features"], "num_frames": ex["num_frames"]} for ex in FG],
               time={"features": "num_frames"}),  # exported: the identity outside training
    # data.functionals: one vector per utterance beside the frames (padding the frames changes nothing)
    model_case("cnn_pool_functionals", build_baseline, dict(kind="cnn_pool", functionals_dim=6, functionals_dropout=0.2,
                                                            **SMALL_FG),
               [{"features": ex["features"], "num_frames": ex["num_frames"],
                 "functionals": np.linspace(-1, 1, 6, dtype="float32") * (i + 1)} for i, ex in enumerate(FG)],
               time={"features": "num_frames"}, export=False),
]


def test_the_functionals_input_reaches_the_decision():
    """The cnn_pool hybrid's output moves with its functionals (the input is wired, not ignored);
    functionals_dim is refused for the other baselines."""
    model = build_baseline("cnn_pool", functionals_dim=6, **SMALL_FG)
    x = {"features": FG[0]["features"][None], "num_frames": np.array([120], "int32"),
         "functionals": np.zeros((1, 6), "float32")}
    a = model.predict_on_batch(x)["emotion"]
    b = model.predict_on_batch({**x, "functionals": np.full((1, 6), 3.0, "float32")})["emotion"]
    assert np.abs(a - b).max() > 1e-3
    with pytest.raises(ValueError, match="functionals_dim is for cnn_pool"):
        build_baseline("cnn_lstm", functionals_dim=6, **SMALL_FG)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_model(case, tmp_path):
    run_case(case, tmp_path)


def test_models_export_and_reload_without_keras_ser(tmp_path):
    check_exports(CASES, tmp_path)


def test_an_out_of_vocabulary_word_is_a_word_not_padding():
    """Dropping the OOV word changes the output (padding would not)."""
    model = CASES[0].make()
    both = np.asarray(model(pad_batch(FG, WORDS["time"]))["emotion"])
    fewer = dict(FG[0], word_ids=np.array([3, 5], "int32"), word_starts=np.array([0.05, 0.8], "float32"),
                 word_ends=np.array([0.4, 1.15], "float32"), num_words=np.int32(2))
    assert np.abs(np.asarray(model(single(fewer))["emotion"][0]) - both[0]).max() > 1e-6


def test_word_alignments_by_mode(tiny_corpus):
    from keras_ser.errors import AlignmentError
    from keras_ser.training.fg_cme import word_alignments

    man = tiny_corpus.manifest.head(4).copy()
    cfg = load_config("fg_cme/synthetic", ["fg_cme.alignment=given"])
    given, counts = word_alignments(cfg, man)
    assert counts == {"given": 4, "approximate": 0, "uniform": 0}
    assert given[man.utterance_id.iloc[0]] == list(man.words.iloc[0])
    # Without timings: "given" is an error naming the file, "auto" approximates (and counts it).
    man.loc[man.index[1], "words"] = None
    with pytest.raises(AlignmentError, match=man.path.iloc[1].replace("\\", "\\\\")):
        word_alignments(cfg, man)
    auto, counts = word_alignments(load_config("fg_cme/synthetic", ["fg_cme.alignment=auto"]), man)
    assert counts == {"given": 3, "approximate": 1, "uniform": 0}
    assert [w for w, _, _ in auto[man.utterance_id.iloc[1]]] == man.text.iloc[1].split()
    uni, counts = word_alignments(load_config("fg_cme/synthetic", ["fg_cme.alignment=uniform"]), man)
    assert counts["uniform"] == 4 and uni[man.utterance_id.iloc[0]][-1][2] == pytest.approx(man.duration.iloc[0], abs=1e-3)
    # Loaders and read_manifest fill durations; a DataFrame without them is an error naming the file
    # (NaN timings once made every word cover no frame, and FG_CME silently lost its audio).
    with pytest.raises(AlignmentError, match="no duration in the manifest"):
        word_alignments(load_config("fg_cme/synthetic", ["fg_cme.alignment=uniform"]), man.assign(duration=np.nan))
    # A transcript that disagrees with the timings is an error, not a silent crop.
    man.loc[man.index[0], "text"] = man.text.iloc[0] + " extra"
    with pytest.raises(AlignmentError, match="does not match the transcript"):
        word_alignments(load_config("fg_cme/synthetic", ["fg_cme.alignment=auto"]), man)


def test_speed_perturbed_copies_train_with_their_words_rescaled(tmp_path):
    """`data.speed_perturb` adds copies lasting 1/factor as long; their words must move with them
    (the copy of an utterance must not be paired with the original's timings)."""
    from keras_ser.text import Vocabulary
    from keras_ser.training import fg_cme
    from keras_ser.training.data import fold_list

    cfg = load_config("fg_cme/synthetic", [
        "data.synthetic_size=tiny", f"data.records_dir={tmp_path / 'records'}", "data.num_workers=1",
        "train.verbose=0", "data.speed_perturb=[1.25]", "train.batch_size=64", "protocol.k=4"])
    rs, manifest, labels_of, alignments, _ = fg_cme.prepare(cfg)
    ids = list(fold_list(cfg, manifest)[0].train)
    vocab = Vocabulary.build([[w for w, _, _ in alignments[u]] for u in ids])
    ds = fg_cme.dataset(rs, cfg, ids, labels_of, alignments, vocab, ["num_frames", "word_starts", "word_ends"],
                        shuffle=True)
    frames, starts, ends = [], [], []
    for x, _, _ in ds:
        frames += list(np.asarray(x["num_frames"]))
        starts += [tuple(np.round(r, 3)) for r in np.asarray(x["word_starts"])]
        ends += list(np.asarray(x["word_ends"]).max(-1))
    assert len(frames) == 2 * len(ids)  # every utterance and its copy
    original = fg_cme.word_arrays(ids, alignments, vocab)["word_starts"]
    want = sorted([tuple(np.round(r, 3)) for r in original] + [tuple(np.round(r / 1.25, 3)) for r in original])
    assert sorted(starts) == want
    # Every example's words lie within its own audio (10 ms hop, 25 ms window).
    assert all(e <= 0.01 * n + 0.03 for e, n in zip(ends, frames))


@pytest.mark.parametrize("kind", ["cnn_lstm", "blstm_attention_audio", "blstm_attention_text", "utterance_concat",
                                  "attention_fusion", "cnn_pool"])
def test_baselines_take_the_inputs_they_need(kind):
    """Padding, saving and export: the baseline cases above."""
    m = build_baseline(kind, 4, 40, vocab_size=10, embedding_dim=8, conv_filters=(8, 8, 8), lstm_units=8,
                       attention_units=8, hidden_units=8)
    assert sorted(m.input) == sorted(_inputs(kind))
    out = m(pad_batch([{k: v for k, v in ex.items() if k in m.input} for ex in FG], WORDS["time"]))["emotion"]
    assert out.shape == (2, 4)
    np.testing.assert_allclose(np.sum(out, -1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def fg_run(tmp_path_factory):
    from keras_ser.training.runner import run

    out = tmp_path_factory.mktemp("fg")
    cfg = load_config("fg_cme/synthetic", [
        "data.synthetic_size=tiny", f"data.records_dir={out / 'records'}", f"output_dir={out / 'run'}",
        "protocol.k=4", "train.epochs=3", "train.patience=3", "train.verbose=0", "data.num_workers=1",
        "fg_cme.test_curve=true", "model.params={conv_filters: [8, 16, 16], semantic_units: 16, lstm_units: 8, hidden_units: 8, embedding_dim: 8, spec_augment: {}}"])
    return cfg, run(cfg)


def test_the_model_is_chosen_on_dev_and_the_test_curve_only_reports(fg_run):
    """The original code chose the epoch on the test fold; here dev chooses, and the test curve
    (`fg_cme.test_curve`) only reports what that optimistic choice would have scored."""
    import pandas as pd

    cfg, summary = fg_run
    fold = summary["folds"][0]
    fold_dir = os.path.join(cfg.output_dir, "folds", fold["fold"])
    curve = json.load(open(os.path.join(fold_dir, "test_curve.json")))
    history = pd.read_csv(os.path.join(fold_dir, "history.csv"))
    assert [c["epoch"] for c in curve] == list(range(1, len(history) + 1)) and len(curve) == 3
    chosen = int(history["val_loss"].idxmin())
    assert fold["wa"] == pytest.approx(curve[chosen]["wa"]) and fold["ua"] == pytest.approx(curve[chosen]["ua"])
    assert fold["best_on_test"]["wa"] == max(c["wa"] for c in curve) >= fold["wa"]
    assert summary["best_on_test"]["wa"]["mean"] == fold["best_on_test"]["wa"]
    # The run trained with SpecAugment (model.params.spec_augment), saved with the model.
    from keras_ser.training.loop import load_model

    assert load_model(os.path.join(fold_dir, "best.keras")).get_layer("spec_augment").time_mask_param == 20


def test_run_and_export_serve_audio_with_words(fg_run, tiny_corpus, tmp_path):
    cfg, summary = fg_run
    assert summary["word_timings"] == {"given": 64, "approximate": 0, "uniform": 0}
    fold = summary["folds"][0]
    assert fold["n"] == fold["test"] and fold["vocabulary"] > 2
    meta = json.load(open(f"{summary['export']}/keras_ser.json"))
    assert meta["signatures"]["serving_default"] == ["waveform", "num_samples", "word_ids", "word_starts",
                                                     "word_ends", "num_words"]
    vocab = Vocabulary(meta["vocabulary"][2:])
    row = tiny_corpus.manifest.iloc[0]
    ids = vocab.ids([w for w, _, _ in row.words]).tolist()
    code = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        "from keras_ser.audio.io import load_audio\n"
        "m = tf.saved_model.load(sys.argv[1]); w = load_audio(sys.argv[2]); words = json.loads(sys.argv[3])\n"
        "f = m.signatures['serving_default']\n"
        "out = f(waveform=tf.constant(w[None]), num_samples=tf.constant([len(w)], tf.int32),\n"
        "        word_ids=tf.constant([words['ids']], tf.int32), word_starts=tf.constant([words['s']], tf.float32),\n"
        "        word_ends=tf.constant([words['e']], tf.float32), num_words=tf.constant([len(words['ids'])], tf.int32))\n"
        "print(json.dumps(np.asarray(out['emotion']).tolist()))\n")
    words = json.dumps({"ids": ids, "s": [s for _, s, _ in row.words], "e": [e for _, _, e in row.words]})
    res = subprocess.run([sys.executable, "-c", code, summary["export"], row.path, words], capture_output=True,
                         text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 0, res.stderr[-2000:]
    probs = np.array(json.loads(res.stdout.strip().splitlines()[-1]))
    assert probs.shape == (1, 4) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    # keras_ser-predict without words: a clear error, not a TensorFlow traceback.
    predict = [sys.executable, "-m", "keras_ser.cli.predict", summary["export"]]
    res = subprocess.run([*predict, row.path], capture_output=True, text=True)
    assert res.returncode == 2 and "also needs word_ids" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([*predict, row.path, row.path, "--transcript", "one text"], capture_output=True, text=True)
    assert res.returncode == 2 and "2 audio files but 1 --transcript" in res.stderr
    # With word timestamps (an ASR tool's JSON) it gives what the SavedModel gives; a missing
    # words file is an error naming it, and the other files are still scored.
    good, missing = tmp_path / "words.json", tmp_path / "missing.json"
    good.write_text(json.dumps({"segments": [{"words": [{"word": w, "start": a, "end": b} for w, a, b in row.words]}]}))
    res = subprocess.run([*predict, row.path, row.path, "--json", "--words", str(good), str(missing)],
                         capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 2 and f"{missing}: no such file" in res.stderr and "Traceback" not in res.stderr
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    got = [rec["probabilities"][n] for n in meta["label_names"]]
    np.testing.assert_allclose(got, probs[0], atol=1e-4)
    # A transcript alone: approximate timings, and the run says so.
    text = " ".join(w for w, _, _ in row.words)
    res = subprocess.run([*predict, row.path, "--transcript", text], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 0 and "APPROXIMATE" in res.stderr
    assert res.stdout.strip().split("\t")[1] in meta["label_names"]


def test_the_emodb_preset_aligns_every_real_utterance():
    """Emo-DB's syllable file for 13a01Wb is empty: the preset's "auto" alignment gives that one
    utterance approximate timings and counts it; "given" names the file."""
    from keras_ser.corpora import load_corpus
    from keras_ser.training.fg_cme import word_alignments
    from tests.conftest import shared_corpus

    root = shared_corpus("emodb")
    cfg = load_config("fg_cme/emodb", [f"data.root={root}"])
    man, _ = load_corpus("emodb", root)
    man = man[man["emotion"].isin(cfg.data.emotions)]
    alignments, counts = word_alignments(cfg, man)
    assert len(alignments) == len(man) and counts["uniform"] == 0 and counts["approximate"] <= 1
    missing = man[man["words"].map(lambda w: not w)]
    if len(missing):
        with pytest.raises(AlignmentError, match=os.path.basename(missing["path"].iloc[0])):
            word_alignments(load_config("fg_cme/emodb", [f"data.root={root}", "fg_cme.alignment=given"]), missing)


def test_a_finished_run_resumes_without_retraining_and_exports_the_saved_model(fg_run):
    """A rerun of a finished run trains nothing: it reads every fold's metrics, reloads the first
    fold's model and vocabulary, and exports them with the same serving signature."""
    from keras_ser.training.runner import run

    cfg, summary = fg_run
    fold_dirs = [os.path.join(cfg.output_dir, "folds", f["fold"]) for f in summary["folds"]]
    histories = [open(os.path.join(d, "history.csv")).read() for d in fold_dirs]
    again = run(cfg)
    assert [open(os.path.join(d, "history.csv")).read() for d in fold_dirs] == histories
    assert again["mean"] == summary["mean"] and again["folds_run"] == summary["folds_run"]
    # the time the folds took is kept across invocations (`seconds` is each invocation's own)
    assert again["fold_seconds"] == summary["fold_seconds"] == round(sum(f["seconds"] for f in summary["folds"]), 1)
    assert min(f["seconds"] for f in summary["folds"]) > 0
    meta = json.load(open(f"{again['export']}/keras_ser.json"))
    assert meta["vocabulary"] == json.load(open(f"{summary['export']}/keras_ser.json"))["vocabulary"]
    assert meta["signatures"]["serving_default"][-1] == "num_words"


def test_table1_experiment_keeps_each_row_s_folds_and_the_test_curve(tmp_path, capsys):
    """experiments/fg_cme_table1.py: one run per row, its JSON with the per-fold scores and, with
    `fg_cme.test_curve`, the original code's optimistic best-on-test beside the honest mean; a
    later run adds its rows to the same table, never those of another protocol."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "experiments", "fg_cme_table1.py")
    spec = importlib.util.spec_from_file_location("fg_cme_table1", path)
    table1 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table1)
    out = tmp_path / "table1.json"
    assert table1.main([
        "fg_cme/synthetic", "data.synthetic_size=tiny", f"data.records_dir={tmp_path / 'records'}",
        f"output_dir={tmp_path / 'runs'}", "protocol.k=4", "protocol.max_folds=1", "train.epochs=2",
        "train.verbose=0", "data.num_workers=1", "fg_cme.test_curve=true", "export.enabled=false",
        "model.params={conv_filters: [8, 16, 16], semantic_units: 16, lstm_units: 8, hidden_units: 8, embedding_dim: 8}",
        "--rows", "fg_cme,no_cme", "--out", str(out)]) == 0
    rows = json.load(open(out))["rows"]
    assert list(rows) == ["fg_cme", "no_cme"] and rows["no_cme"]["overrides"][0] == "model.params.excite_acoustic=false"
    for row in rows.values():
        assert len(row["per_fold"]) == 1 and row["wa"]["mean"] == pytest.approx(row["per_fold"][0]["wa"])
        assert row["best_on_test"]["wa"]["mean"] >= row["wa"]["mean"]
    assert os.path.exists(tmp_path / "runs" / "no_cme" / "folds")

    # A later run into the same --out adds (or replaces) its rows and keeps the others ...
    first = json.load(open(out))
    argv = ["fg_cme/synthetic", *first["overrides"], "--rows", "no_cme", "--out", str(out)]
    assert table1.main(argv) == 0  # the run resumes: its fold is done
    assert json.load(open(out))["rows"] == first["rows"]
    # ... but never mixes protocols, and says which file holds what.
    with pytest.raises(SystemExit):
        table1.main(["fg_cme/synthetic", *first["overrides"], "protocol.k=5", "--rows", "no_cme", "--out", str(out)])
    assert f"{out}: holds rows of fg_cme/synthetic" in capsys.readouterr().err
    assert json.load(open(out)) == first
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit):
        table1.main(["fg_cme/synthetic", "--rows", "no_cme", "--out", str(broken)])
    assert f"{broken}: not a table written by this script" in capsys.readouterr().err
