"""FG_CME runs: word alignments, vocabulary, the audio + words pipeline, folds, export.

Word timings come from the manifest (never from the records, which do not change when the
alignment does): `fg_cme.alignment` picks the corpus's own timings, approximate ones, or uniform
ones (see `FgCmeConfig`); every given alignment is checked against its transcript. The
vocabulary is built from each fold's training transcripts, so test words it has not seen are
out of vocabulary, as they would be for a deployed model.

Per fold (`folds/<fold>/`): `best.keras`, `history.csv`, `vocabulary.json`, `metrics.json`; the
first fold's model is exported with word inputs (`serving_default`: waveform, num_samples,
word_ids, word_starts, word_ends, num_words; `keras_ser.json` holds the vocabulary).

With `data.functionals` (cnn_pool only) each utterance's openSMILE functionals are a second
input (`utterance_features.Functionals`): per speaker first with `data.normalization: speaker`, then standardised
with the fold's training utterances' scaler; an unseen corpus's as `data.eval_normalization` says.
"""

import os

import keras
import numpy as np

from keras_ser.audio.frontends import get_frontend_config
from keras_ser.audio.io import load_audio
from keras_ser.corpora.alignments import approximate_alignment, check_alignment, transcript_words
from keras_ser.errors import AlignmentError
from keras_ser.labels.emotion_targets import class_weights
from keras_ser.models.fg_cme import build_baseline, build_fg_cme
from keras_ser.text import Vocabulary, load_embeddings
from keras_ser.training import data, loop
from keras_ser.training import metrics as M
from keras_ser.training import utterance_features as F
from keras_ser.training.registry import System, register
from keras_ser.utils import read_json, write_json


def uniform_alignment(text, duration):
    """The transcript's words spread evenly over the whole utterance (an ablation)."""
    words = transcript_words(text)
    edges = np.linspace(0.0, duration, len(words) + 1)
    return [(w, round(float(a), 4), round(float(b), 4)) for w, a, b in zip(words, edges[:-1], edges[1:])]


def word_alignments(cfg, manifest):
    """`{utterance_id: [(word, start, end), ...]}` and counts by source (given / approximate /
    uniform). Raises `AlignmentError` naming the file for a missing transcript or timings
    (alignment "given"), a transcript mismatch, or more than `fg_cme.max_words` words."""
    mode = cfg.fg_cme.alignment
    out, counts = {}, {"given": 0, "approximate": 0, "uniform": 0}
    for row in manifest.itertuples():
        text, words, path = row.text, row.words, row.path
        if not text and not words:
            raise AlignmentError(f"{path}: no transcript and no word timings (FG_CME needs words)")
        if mode in ("given", "auto") and words:
            if text:
                check_alignment(words, text, path, duration=row.duration)
            source = "given"
        elif mode == "given":
            raise AlignmentError(f"{path}: no word timings (fg_cme.alignment=given); use 'auto' or 'approximate'")
        elif mode == "uniform":
            if not np.isfinite(row.duration):  # manifests from loaders and read_manifest always have one
                raise AlignmentError(f"{path}: no duration in the manifest (fg_cme.alignment=uniform needs it)")
            words, source = uniform_alignment(text or " ".join(w for w, _, _ in words), row.duration), "uniform"
        else:
            words = approximate_alignment(text or " ".join(w for w, _, _ in words), load_audio(path))
            source = "approximate"
        if not all(np.isfinite(a) and np.isfinite(b) for _, a, b in words):
            raise AlignmentError(f"{path}: word timings are not finite numbers ({source})")
        if len(words) > cfg.fg_cme.max_words:
            raise AlignmentError(f"{path}: {len(words)} words, more than fg_cme.max_words={cfg.fg_cme.max_words}")
        out[row.utterance_id] = list(words)
        counts[source] += 1
    return out, counts


def word_arrays(ids, alignments, vocab):
    """Padded `(N, W)` word ids, starts and ends, and `(N,)` word counts for `ids`."""
    w = max(1, max(len(alignments[u]) for u in ids))
    wid = np.zeros((len(ids), w), np.int32)
    starts, ends = np.zeros((len(ids), w), np.float32), np.zeros((len(ids), w), np.float32)
    n = np.zeros(len(ids), np.int32)
    for i, u in enumerate(ids):
        words = alignments[u]
        n[i] = len(words)
        if words:
            wid[i, : n[i]] = vocab.ids([x[0] for x in words])
            starts[i, : n[i]] = [x[1] for x in words]
            ends[i, : n[i]] = [x[2] for x in words]
    return {"word_ids": wid, "word_starts": starts, "word_ends": ends, "num_words": n}


def dataset(rs, cfg, ids, labels_of, alignments, vocab, input_names, weights=None, shuffle=False, positions=False,
            normalize="default", functionals=None):
    """Batches `(inputs, {"emotion": one-hot}, {"emotion": weight})` of `ids`, with the word
    inputs looked up by utterance id; only the model's own inputs are passed. Training batches
    (`shuffle`) also hold the `data.speed_perturb` copies, their word timings divided by the factor
    (and the functionals of the original audio).
    With `data.trim_silence`, word times move back by what was trimmed off the start.
    `functionals`: `{utterance_id: standardised vector}`, for a model with a `functionals` input."""
    import tensorflow as tf

    k = len(rs.label_names)
    cols = word_arrays(ids, alignments, vocab)
    if "functionals" in input_names:
        if functionals is None:
            raise ValueError("fg_cme.dataset: the model takes functionals (data.functionals) and none were given")
        cols["functionals"] = np.stack([functionals[u] for u in ids]).astype(np.float32)
    man = rs.manifest.set_index("utterance_id")
    if "trim_start" in man.columns:  # `data.trim_silence`: the records start later than the audio
        offset = man.loc[list(ids), "trim_start"].fillna(0.0).to_numpy(np.float32)[:, None]
        real = np.arange(cols["word_ids"].shape[1])[None, :] < cols["num_words"][:, None]
        for col in ("word_starts", "word_ends"):
            cols[col] = np.where(real, np.maximum(cols[col] - offset, 0.0), 0.0).astype(np.float32)
    cols["targets"] = np.eye(k, dtype=np.float32)[[labels_of[u] for u in ids]]
    cols["weights"] = np.ones(len(ids), np.float32) if weights is None else np.asarray(weights, np.float32)

    def to_xy(b, rows):
        x = {"features": b["features"], "num_frames": b["num_frames"],
             "word_ids": tf.cast(rows["word_ids"], tf.int32), "word_starts": rows["word_starts"],
             "word_ends": rows["word_ends"], "num_words": tf.cast(rows["num_words"], tf.int32)}
        if "functionals" in rows:
            x["functionals"] = rows["functionals"]
        return {n: x[n] for n in input_names}, {"emotion": rows["targets"]}, {"emotion": rows["weights"]}

    def copies(factor):  # a speed-perturbed copy lasts 1/factor as long: so do its words
        return dict(cols, word_starts=cols["word_starts"] / factor, word_ends=cols["word_ends"] / factor)

    ds = data.make_dataset(rs, cfg, ids, cols, to_xy, shuffle=shuffle, perturbed=shuffle, perturbed_columns=copies,
                           positions=positions, normalize=normalize)
    return data.mix_batches(ds, cfg.train.mixup) if shuffle and cfg.train.mixup else ds


def frontend_params(cfg, frontend):
    """FG_CME maps word times to frames with the features' own hop and window (in seconds)."""
    if cfg.model.name != "fg_cme":  # the baselines pool frames, not words
        return {}
    return {"hop_s": frontend.hop_length / frontend.sample_rate, "win_s": frontend.win_length / frontend.sample_rate}


def build_model(cfg, rs, stats, vocab, functionals_dim=0):
    params = loop.model_params(cfg, frontend_params(cfg, get_frontend_config(rs.frontend)))
    if functionals_dim:
        params["functionals_dim"] = functionals_dim
    embeddings = None
    if cfg.fg_cme.embeddings:
        embeddings, found = load_embeddings(cfg.fg_cme.embeddings, vocab, seed=cfg.seed)
        params["embedding_dim"] = embeddings.shape[1]
        print(f"  embeddings: {found} of {len(vocab) - 2} words found in {cfg.fg_cme.embeddings}")
    common = dict(num_classes=len(rs.label_names), feature_dim=rs.feature_dim, vocab_size=len(vocab),
                  embeddings=embeddings, train_embeddings=cfg.fg_cme.train_embeddings, mean=stats.mean,
                  std=stats.std())
    if cfg.model.name == "fg_cme":
        return build_fg_cme(**common, **params)
    return build_baseline(cfg.model.name, **common, **params)


def test_curve_callback(test_ds, label_names, path):
    """Keras callback: WA/UA of the test fold after every epoch, appended to `path` (JSON, atomic;
    kept across a resumed fit). The original FG_CME code reported the best of these (it chose the
    epoch on the test fold); here they are a diagnostic only and choose nothing."""
    class TestCurve(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curve = read_json(path) if os.path.exists(path) else []

        def on_epoch_end(self, epoch, logs=None):
            y_true, y_prob = loop.predict_labels(self.model, test_ds)
            m = M.classification_metrics(y_true, y_prob.argmax(-1), label_names)
            self.curve = [c for c in self.curve if c["epoch"] < epoch + 1]
            self.curve.append({"epoch": epoch + 1, "wa": m["wa"], "ua": m["ua"]})
            write_json(self.curve, path)

    return TestCurve()


def best_on_test(curve):
    """The original code's number: the epoch with the best test WA (ties: the earlier)."""
    best = max(curve, key=lambda c: (c["wa"], -c["epoch"]))
    return {"epoch": best["epoch"], "wa": best["wa"], "ua": best["ua"], "epochs": len(curve)}


def predict_unseen(cfg, model, unseen, train_stats, vocab, functionals=None):
    """The model's probabilities on an unseen corpus's utterances (`unseen.scored`, labelled or
    not): its words from its own timings where it
    has them, approximate ones otherwise (`fg_cme.alignment`), looked up in the fold's
    vocabulary; its features normalised by `data.eval_normalizer`; `functionals` its
    standardised functionals (`utterance_features.Functionals.unseen`) for a model that takes them; with
    `data.eval_adapt`, adapted to it first (`loop.predict_adapted`)."""
    names = list(model.input.keys())
    man = unseen.scored
    ids = man["utterance_id"].tolist()
    labels_of = dict.fromkeys(ids, 0)  # unused: predicting needs no labels
    alignments = word_alignments(cfg, man)[0] if "word_ids" in names else {u: [] for u in ids}
    ds = dataset(unseen.records, cfg, ids, labels_of, alignments, vocab, names, positions=True,
                 normalize=data.eval_normalizer(cfg, unseen.records, train_stats), functionals=functionals)
    return loop.predict_adapted(cfg, model, ds)


def train_fold(cfg, rs, fold, fold_dir, labels_of, alignments, callbacks=(), unseens=(), functionals=None):
    vocab = Vocabulary.build([[w for w, _, _ in alignments[u]] for u in fold.train], cfg.fg_cme.min_count)
    scaler, fz = functionals.fold(fold.train) if functionals is not None else (None, None)
    vocab.save(os.path.join(fold_dir, "vocabulary.json"))
    curve_path = os.path.join(fold_dir, "test_curve.json")
    if loop.finished_stage(cfg, fold_dir):
        model = loop.load_model(os.path.join(fold_dir, "best.keras"))
    else:
        stats = data.training_stats(rs, cfg, fold.train)
        keras.utils.set_random_seed(cfg.seed)
        with loop.strategy(cfg.train.strategy).scope():
            model = build_model(cfg, rs, stats, vocab, functionals.dim if functionals is not None else 0)
            model.compile(optimizer=loop.make_optimizer(cfg, cfg.train.learning_rate),
                          loss={"emotion": keras.losses.CategoricalCrossentropy()},
                          metrics={"emotion": [keras.metrics.CategoricalAccuracy(name="wa")]},
                          jit_compile=cfg.train.jit_compile)
        names = list(model.input.keys())
        sw = None
        if cfg.train.class_weights:
            y = np.eye(len(rs.label_names))[[labels_of[u] for u in fold.train]]
            sw = y @ class_weights(y, "hard")
        train_ds = dataset(rs, cfg, fold.train, labels_of, alignments, vocab, names, sw, shuffle=True, functionals=fz)
        dev_ds = dataset(rs, cfg, fold.dev, labels_of, alignments, vocab, names, functionals=fz) if fold.dev else None
        if cfg.fg_cme.test_curve:
            test_ds = dataset(rs, cfg, fold.test, labels_of, alignments, vocab, names, functionals=fz)
            callbacks = [*callbacks, test_curve_callback(test_ds, rs.label_names, curve_path)]
        model = loop.fit(model, train_ds, dev_ds, fold_dir, cfg, callbacks)
    test_ds = dataset(rs, cfg, fold.test, labels_of, alignments, vocab, list(model.input.keys()), positions=True,
                      functionals=fz)
    y_true, y_prob = loop.predict_labels(model, test_ds)
    loop.write_predictions(fold_dir, rs.manifest, fold.test, y_prob, rs.label_names)
    res = M.classification_metrics(y_true, y_prob.argmax(-1), rs.label_names)
    if cfg.fg_cme.test_curve and os.path.exists(curve_path):
        res["best_on_test"] = best_on_test(read_json(curve_path))
    if unseens:
        res["unseen"] = loop.score_unseen(cfg, fold_dir, unseens, lambda u: predict_unseen(
            cfg, model, u, data.training_stats(rs, cfg, fold.train), vocab,
            functionals.unseen(u, scaler) if functionals is not None else None), rs.label_names)
    res.update(fold=fold.name, **fold.to_dict(), vocabulary=len(vocab),
               test_oov_words=int(sum(vocab.ids([w for w, _, _ in alignments[u]]).tolist().count(1) for u in fold.test)))
    return model, vocab, res


def prepare(cfg, d=None):
    """`(records, manifest of the labelled utterances with records, labels_of, alignments, sources)`
    of the run's data `d` (`data.load(cfg)` when None)."""
    d = d or data.load(cfg)
    rs, manifest = d.records, data.labelled(cfg, d.manifest)
    alignments, sources = word_alignments(cfg, manifest)
    labels_of = dict(zip(manifest["utterance_id"], manifest["emotion"].map(rs.label_names.index)))
    return rs, manifest, labels_of, alignments, sources


def utterance_embeddings(cfg, layer="fc", fold_index=0):
    """A finished run's test utterances of one fold through its model up to `layer`:
    `(embeddings (N, D), labels (N,), label names)` (the notebook's t-SNE)."""
    d = data.load(cfg)
    rs, manifest, labels_of, alignments, _ = prepare(cfg, d)
    fold = data.fold_list(cfg, manifest)[fold_index]
    fold_dir = os.path.join(cfg.output_dir, "folds", fold.name)
    model = loop.load_model(os.path.join(fold_dir, "best.keras"))
    embed = keras.Model(model.inputs, model.get_layer(layer).output)
    vocab = Vocabulary.load(os.path.join(fold_dir, "vocabulary.json"))
    fz = None
    if cfg.data.functionals:  # the fold's scaler, as training fitted it (on training and, with select last, dev)
        train = list(fold.train) + (list(fold.dev) if cfg.train.select != "best" else [])
        fz = F.Functionals(cfg, d.corpus).fold(train)[1]
    ds = dataset(rs, cfg, fold.test, labels_of, alignments, vocab, list(model.input.keys()), functionals=fz)
    z, y = [], []
    for x, t, _ in ds:
        z.append(np.asarray(embed.predict_on_batch(x)))
        y.append(np.argmax(np.asarray(t["emotion"]), -1))
    return np.concatenate(z), np.concatenate(y), rs.label_names


def run(cfg, out, d, callbacks=()):
    rs, manifest, labels_of, alignments, sources = prepare(cfg, d)
    label_names = rs.label_names
    print(f"fg_cme on {cfg.data.corpus}: {len(manifest)} utterances; word timings: " +
          ", ".join(f"{v} {k}" for k, v in sources.items() if v)
          + (" (APPROXIMATE: spread over the voiced region, not forced-aligned)" if sources["approximate"] else ""))
    folds = data.fold_list(cfg, manifest)
    unseens = [data.Unseen(cfg, e) for e in cfg.data.eval_corpora]
    # every utterance of the corpus: per-speaker statistics use all of a speaker's audio
    functionals = F.Functionals(cfg, d.corpus) if cfg.data.functionals else None
    if functionals is not None:
        print(f"  second input: {functionals.dim} {cfg.data.functionals} functionals per utterance")

    def train_one(fold, fold_dir):
        model, vocab, res = train_fold(cfg, rs, fold, fold_dir, labels_of, alignments, callbacks, unseens,
                                       functionals)
        loop.confusion_plot(out, res, label_names, fold.name)
        print(f"fold {fold.name}: WA {res['wa']:.3f} UA {res['ua']:.3f}")
        return (model, vocab), res

    def load_first(fold_dir):
        return (loop.load_model(os.path.join(fold_dir, "best.keras")),
                Vocabulary.load(os.path.join(fold_dir, "vocabulary.json")))

    results, first = loop.run_folds(cfg, out, folds, train_one, load_first)
    extra = {"model": cfg.model.name, "alignment": cfg.fg_cme.alignment, "word_timings": sources,
             "functionals": cfg.data.functionals}
    if results and all("best_on_test" in r for r in results):
        extra["best_on_test"] = {k: M.mean_sd([r["best_on_test"][k] for r in results]) for k in ("wa", "ua")}
    export = None
    # the text-only baseline takes no audio; a functionals input cannot be computed by a serving graph
    if first is not None and "features" in first[0].input and not cfg.data.functionals:
        export = loop.Export(first[0], rs.frontend, {
            "emotion_head": "probabilities", "vocabulary": first[1].tokens,
            "words": "word_ids from the vocabulary (0 padding, 1 out of vocabulary); "
                     "word_starts/word_ends in seconds; num_words"})
    summary = loop.finish(cfg, out, results, label_names, extra=extra, export=export, name=cfg.model.name, data=d)
    if "best_on_test" in extra:
        b = extra["best_on_test"]
        print(f"  epoch chosen on the test fold (the original code's protocol, optimistic; choosing nothing here): "
              f"WA {b['wa']['mean']:.3f} ± {b['wa']['sd']:.3f}, UA {b['ua']['mean']:.3f} ± {b['ua']['sd']:.3f}")
    return summary


def builders(cfg):
    return [build_fg_cme if cfg.model.name == "fg_cme" else build_baseline]


register(System("fg_cme", run, builders, frontend_params))
