"""StrengthNet runs: ranking labels → folds → training → evaluation (seen and unseen corpora) → export.

    from keras_ser.config import load_config
    from keras_ser.training.runner import run
    run(load_config("strengthnet/synthetic", ["data.synthetic_size=tiny"]))

Beside the shared run folder (see `keras_ser.training.loop`):
    ranking/<corpus>.json         each corpus's ranking functions (`StrengthLabeler`, JSON)
    ranking/labels.csv            utterance_id, corpus, speaker, emotion, strength label
    plots/strength_<fold>.png     predicted vs target scatter and histograms
    folds/<fold>/test_predictions.csv  one row per test utterance: utterance_id, corpus, speaker,
                                  emotion, predicted_emotion, strength_label, predicted_strength,
                                  true_strength (NaN where unknown), pure, blend, change, and
                                  score_<emotion>: the emotion head's probabilities (late fusion)
    unseen/<corpus>/predictions.csv  the same for each of `data.eval_corpora` (first fold's model)
    metrics.json                  per fold: MAE/LCC/SRCC/CCC overall and per emotion, emotion
                                  WA/UA, ranking order accuracy on held-out pairs, SRCC against
                                  the true strength where the corpus has one, RAVDESS-style
                                  intensity agreement; `per_corpus` in fused runs; `unseen`: the
                                  same on `data.eval_corpora` plus the training corpora's ranking
                                  functions applied to them
"""

import os
import types

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

from keras_ser.audio.frontends import get_frontend_config
from keras_ser.corpora.synthetic import blend_mask, change_mask, pure_mask
from keras_ser.errors import CorpusError
from keras_ser.labels.emotion_targets import class_weights
from keras_ser.labels.ranking import StrengthLabeler
from keras_ser.losses import MaskedMAE, RankingMAE
from keras_ser.models.strengthnet import build_strengthnet
from keras_ser.training import data, loop
from keras_ser.training import metrics as M
from keras_ser.training import utterance_features as F
from keras_ser.training.plots import plot_strength
from keras_ser.training.protocols import Fold
from keras_ser.training.registry import System, register
from keras_ser.utils import write_csv
from tfrecords_tools.opensmile_features import ExtractionError

HEADS = ("frame_strength", "strength", "emotion")
# Utterance subsets scored against the true strength, and the masks that pick them.
SUBSETS = {"pure": pure_mask, "blend": blend_mask, "change": change_mask}


# -- labels ---------------------------------------------------------------------------------------
def functionals(cfg, manifest):
    """`strength.feature_set` functionals of every row (worker processes; cached per corpus and
    files, shared with `data.functionals` and the reference); a file openSMILE fails on, or whose
    functionals are undefined, is a row of NaN and gets no label; a corpus none of whose files gives
    functionals is a CorpusError."""
    try:
        X, names, errors = F.functionals(cfg, manifest, cfg.strength.feature_set, non_finite="error")
    except ExtractionError as exc:
        X, names, errors = None, None, exc.errors
    for corpus in sorted(manifest["corpus"].unique()):
        paths = manifest["path"][manifest["corpus"] == corpus]
        bad = [p for p in paths if p in errors]
        if bad and len(bad) == len(paths):
            raise CorpusError(f"{corpus}: openSMILE gave {cfg.strength.feature_set} functionals for none of its "
                              f"{len(paths)} files (first: {bad[0]}: {errors[bad[0]]}): no strength labels")
        if bad:
            print(f"openSMILE failed on {len(bad)} {corpus} files (first: {bad[0]}: {errors[bad[0]]}); they get no label")
    return X, names


def fit_labeler(cfg, X, man, per=None):
    st = cfg.strength
    ok = np.isfinite(X).all(1)
    lab = StrengthLabeler(st.neutral, st.C, per or st.per, st.similar)
    return lab.fit(X[ok], man["speaker"].to_numpy(str)[ok], man["emotion"].to_numpy(str)[ok], None)


def heldout_order_accuracy(cfg, X, man, fraction=0.2, seed=0):
    """Pairwise-order accuracy on held-out (emotional, neutral) pairs: the ranking functions are
    refitted on the other utterances of each (speaker, emotion) group."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(man), bool)
    for _, idx in man.groupby(["speaker", "emotion"]).indices.items():
        idx = rng.permutation(idx)
        held[idx[: max(1, int(round(fraction * len(idx))))] if len(idx) > 2 else []] = True
    ok = np.isfinite(X).all(1)
    lab = fit_labeler(cfg, X[~held & ok], man[~held & ok])
    acc, _ = lab.order_accuracy(X[held & ok], man["speaker"].to_numpy(str)[held & ok],
                                man["emotion"].to_numpy(str)[held & ok])
    return acc


def strength_labels(cfg, manifest, out_dir):
    """Strength label per row of `manifest` (NaN: none), the fitted labelers and label statistics."""
    st = cfg.strength
    info = {"labels": st.labels}
    if st.labels == "manifest":
        s = manifest["strength"].to_numpy(float).copy()
        s[manifest["emotion"].to_numpy() == st.neutral] = 0.0
        return s, {}, info
    X, _ = functionals(cfg, manifest)
    out = np.full(len(manifest), np.nan)
    labelers = {}
    os.makedirs(os.path.join(out_dir, "ranking"), exist_ok=True)
    for corpus in sorted(manifest["corpus"].unique()):
        sel = (manifest["corpus"] == corpus).to_numpy()
        man = manifest[sel]
        try:
            lab = fit_labeler(cfg, X[sel], man)
        except ValueError as exc:
            raise CorpusError(f"{corpus}: cannot fit strength ranking functions: {exc}") from None
        lab.save(os.path.join(out_dir, "ranking", f"{corpus}.json"))
        labelers[corpus] = lab
        out[sel] = lab.strengths(X[sel], man["speaker"].to_numpy(str), man["emotion"].to_numpy(str), st.normalise)
        acc_train, _ = lab.order_accuracy(X[sel], man["speaker"].to_numpy(str), man["emotion"].to_numpy(str))
        info[corpus] = {"order_accuracy_train": acc_train, "order_accuracy_heldout": heldout_order_accuracy(cfg, X[sel], man),
                        "functions": len(lab.functions)}
        if manifest.loc[sel, "strength"].notna().any():  # a corpus with the true strength (synthetic)
            emo = man["emotion"].to_numpy() != st.neutral
            truth = man["strength"].to_numpy(float)
            good = emo & np.isfinite(truth) & np.isfinite(out[sel])
            info[corpus]["srcc_labels_vs_truth"] = M.spearman(out[sel][good], truth[good])
            for subset, mask in SUBSETS.items():
                m = good & mask(man)
                if m.sum() > 2:
                    info[corpus][f"srcc_labels_vs_truth_{subset}"] = M.spearman(out[sel][m], truth[m])
            info[corpus]["srcc_labels_vs_truth_per_emotion"] = {
                e: M.spearman(out[sel][good & (man["emotion"].to_numpy() == e)], truth[good & (man["emotion"].to_numpy() == e)])
                for e in sorted(set(man["emotion"][good]))}
    keep = manifest[["utterance_id", "corpus", "speaker", "emotion"]].assign(strength_label=out)
    write_csv(keep, os.path.join(out_dir, "ranking", "labels.csv"), index=False)
    return out, labelers, info


# -- data ---------------------------------------------------------------------------------------
def _strength_xy(b, rows, extra=False):
    import tensorflow as tf

    n = b["num_frames"]
    s = rows["strength"]
    frames = tf.where(tf.sequence_mask(n, tf.shape(b["features"])[1]), s[:, None], -1.0)
    x = {"features": b["features"], "num_frames": n}
    if "functionals" in rows:
        x["functionals"] = rows["functionals"]
    y = {"frame_strength": frames, "strength": s, "emotion": rows["emotion"]}
    if extra:  # evaluation only: the corpus's true strength and intensity (NaN where unknown),
        # and each utterance's position in `ids` (the pipeline reads shards, not `ids`, in order)
        y.update(true_strength=rows["true_strength"], strong=rows["strong"], position=rows["position"])
    sw = {"frame_strength": tf.ones_like(s), "strength": tf.ones_like(s), "emotion": rows["weight"]}
    return x, y, sw


def strong_column(intensity):
    """RAVDESS-style intensity names → 1.0 strong, 0.0 normal, NaN otherwise (no such annotation)."""
    inten = np.asarray(intensity, object)
    return np.where(inten == "strong", 1.0, np.where(inten == "normal", 0.0, np.nan))


def strength_dataset(rs, cfg, ids, table, shuffle=False, perturbed=False, weights=None, extra=False,
                     normalize="default", functionals=None):
    """Pipeline for StrengthNet over `ids`; `table` is indexed by utterance id with columns
    `strength_label`, `label` (emotion index), `true_strength` and `intensity`; `functionals`
    `{utterance_id: standardised vector}` for a model with a `functionals` input."""
    sub = table.loc[list(ids)]
    k = len(rs.label_names)
    labels = sub["label"].to_numpy(int)
    cols = {"strength": sub["strength_label"].to_numpy(np.float32), "emotion": np.eye(k, dtype=np.float32)[labels],
            "weight": np.ones(len(sub), np.float32) if weights is None else np.asarray(weights, np.float32)[labels]}
    if extra:
        cols["true_strength"] = sub["true_strength"].to_numpy(np.float32)
        cols["strong"] = strong_column(sub["intensity"]).astype(np.float32)
        cols["position"] = np.arange(len(sub), dtype=np.float32)
    if functionals is not None:
        cols["functionals"] = np.stack([functionals[u] for u in sub.index]).astype(np.float32)

    def to_xy(b, rows):
        return _strength_xy(b, rows, extra)

    return data.make_dataset(rs, cfg, list(ids), cols, to_xy, shuffle, perturbed, normalize=normalize)


def frontend_params(cfg, frontend):
    """The input layout follows the features: linear magnitudes without a log (the
    `strengthnet_original` frontend) are the original code's input (`original_input`: its
    Dense(257), no normalisation); log features are the paper's (z-normalised)."""
    return {"original_input": not frontend.log}


def build_model(cfg, rs, stats, functionals_dim=0):
    params = loop.model_params(cfg, frontend_params(cfg, get_frontend_config(rs.frontend)))
    if functionals_dim:
        params["functionals_dim"] = functionals_dim
    return build_strengthnet(num_classes=len(rs.label_names), feature_dim=rs.feature_dim, mean=stats.mean,
                             std=stats.std(), **params)


def compile_model(model, cfg):
    """The paper's losses (MAE of frame and utterance strength, cross-entropy of the emotion),
    weighted by `strength.loss_weights`; with `strength.rank_weight` > 0 the utterance
    strength's MAE gains a pairwise ranking term (`RankingMAE`, not in the paper)."""
    st = cfg.strength
    w = {h: float(st.loss_weights.get(h, 1.0)) for h in HEADS}
    utterance = (RankingMAE(st.rank_weight, st.rank_temperature, st.rank_margin) if st.rank_weight > 0
                 else keras.losses.MeanAbsoluteError())
    model.compile(
        optimizer=loop.make_optimizer(cfg, cfg.train.learning_rate, beta_1=0.9, beta_2=0.98),
        loss={"frame_strength": MaskedMAE(), "strength": utterance,
              "emotion": keras.losses.CategoricalCrossentropy()},
        loss_weights=w,
        metrics={"strength": [keras.metrics.MeanAbsoluteError(name="mae")],
                 "emotion": [keras.metrics.CategoricalAccuracy(name="acc")]},
        jit_compile=cfg.train.jit_compile,
    )
    return model


def predict(model, ds):
    """Arrays over the dataset: target and predicted strength, emotion index and probabilities,
    true strength and "strong" (NaN where unknown), and each utterance's position in the ids the
    dataset was built from. Traced, not eager (see `loop.predict_labels`)."""
    cols = {k: [] for k in ("s_true", "s_pred", "e_true", "e_prob", "truth", "strong", "position")}
    for x, y, _ in ds:
        out = model.predict_on_batch(x)
        cols["s_pred"].append(np.asarray(out["strength"]))
        cols["e_prob"].append(np.asarray(out["emotion"]))
        cols["s_true"].append(np.asarray(y["strength"]))
        cols["e_true"].append(np.asarray(y["emotion"]).argmax(-1))
        cols["truth"].append(np.asarray(y["true_strength"]))
        cols["strong"].append(np.asarray(y["strong"]))
        cols["position"].append(np.asarray(y["position"]).astype(int))
    return {k: np.concatenate(v) for k, v in cols.items()}


def evaluate(cfg, model, rs, ids, table, label_names, normalize="default", functionals=None):
    """Strength and emotion metrics on `ids` (plus truth SRCC and intensity agreement when known;
    when `ids` span several corpora, `per_corpus` holds the same metrics for each), and the
    per-utterance predictions: `(metrics, DataFrame)` with the columns of `write_predictions`."""
    ids = list(ids)
    p = predict(model, strength_dataset(rs, cfg, ids, table, extra=True, normalize=normalize, functionals=functionals))
    for subset in SUBSETS:
        p[subset] = table.loc[ids, subset].to_numpy(bool)[p["position"]]
    res = _metrics(cfg, p, label_names)
    corpora = table.loc[ids, "corpus"].to_numpy(str)[p["position"]]
    if len(set(corpora)) > 1:  # a fused run: each corpus's unseen speakers on their own as well
        res["per_corpus"] = {c: _metrics(cfg, {k: v[corpora == c] for k, v in p.items()}, label_names)
                             for c in sorted(set(corpora))}
    rows = table.loc[ids].iloc[p["position"]]
    predictions = rows[["utterance_id", "corpus", "speaker", "emotion"]].assign(
        predicted_emotion=np.asarray(label_names, object)[p["e_prob"].argmax(-1)],
        strength_label=p["s_true"], predicted_strength=p["s_pred"], true_strength=p["truth"],
        **{subset: p[subset] for subset in SUBSETS},
        **{f"score_{name}": p["e_prob"][:, k] for k, name in enumerate(label_names)})
    return res, predictions


def write_predictions(predictions, path):
    """`evaluate`'s per-utterance table as CSV, atomically: utterance_id, corpus, speaker,
    emotion, predicted_emotion, strength_label, predicted_strength, true_strength, pure, blend,
    change, score_<emotion> (the emotion head's probability of each class)."""
    write_csv(predictions, path, index=False, float_format="%.6g")


def _metrics(cfg, p, label_names):
    """The metrics of `evaluate` from `predict`'s arrays."""
    s_true, s_pred, e_true = p["s_true"], p["s_pred"], p["e_true"]
    res = {"overall": M.regression_metrics(s_true, s_pred)}
    res["per_emotion"] = {label_names[k]: M.regression_metrics(s_true[e_true == k], s_pred[e_true == k])
                          for k in range(len(label_names)) if (e_true == k).sum() > 2}
    res["emotion"] = M.classification_metrics(e_true, p["e_prob"].argmax(-1), label_names)
    good = np.isfinite(p["truth"])
    if good.sum() > 2:
        res["srcc_vs_truth"] = M.spearman(p["truth"][good], s_pred[good])
        res["srcc_labels_vs_truth"] = M.spearman(p["truth"][good], s_true[good])
        # pure: one emotion at one strength throughout, where the truth is unambiguous; blend
        # and change: the utterances where no single cue says the strength (docs/results/strengthnet.md).
        for subset in SUBSETS:
            m = good & p.get(subset, np.zeros(len(good), bool))
            if m.sum() > 2:
                res[f"srcc_vs_truth_{subset}"] = M.spearman(p["truth"][m], s_pred[m])
                res[f"srcc_labels_vs_truth_{subset}"] = M.spearman(p["truth"][m], s_true[m])
                res[f"n_{subset}"] = int(m.sum())
    known = np.isfinite(p["strong"])
    if known.sum() > 2:
        strong = p["strong"][known] == 1.0
        pred_strong = s_pred[known] >= cfg.strength.intensity_threshold
        label_strong = s_true[known] >= cfg.strength.intensity_threshold
        # The ranking labels' own agreement with the corpus's intensity: with the original group
        # normalisation (neutral utterances in the range) most emotional labels sit far above 0.5.
        res["intensity"] = {"agreement": float(np.mean(strong == pred_strong)), "n": int(known.sum()),
                            "threshold": cfg.strength.intensity_threshold,
                            "labels_agreement": float(np.mean(strong == label_strong))}
        if 0 < strong.sum() < len(strong):
            res["intensity"]["auc"] = float(roc_auc_score(strong, s_pred[known]))
            res["intensity"]["labels_auc"] = float(roc_auc_score(strong, s_true[known]))
    return res


# -- the run ------------------------------------------------------------------------------------
def label_table(cfg, manifest, strengths, label_names):
    """The labelled utterances, indexed by id. `pure`: no blended second emotion and no change of
    emotion inside the utterance; `blend`, `change`: one of them (the synthetic corpus says;
    other corpora count as pure)."""
    ok = manifest["emotion"].isin(label_names).to_numpy() & np.isfinite(strengths)
    man = manifest[ok]
    return man.assign(
        strength_label=strengths[ok], label=[label_names.index(e) for e in man["emotion"]],
        true_strength=man["strength"].to_numpy(float), intensity=man["intensity"].to_numpy(object),
        **{subset: mask(man) for subset, mask in SUBSETS.items()},
    ).set_index("utterance_id", drop=False)


def fold_list(cfg, table):
    """Folds over the labelled emotional utterances; with several corpora, each is split on its own."""
    if cfg.protocol.name != "split" or table["corpus"].nunique() == 1:
        return data.fold_list(cfg, table)
    parts = [data.fold_list(cfg, table[table["corpus"] == c]) for c in sorted(table["corpus"].unique())]
    folds = []
    for i in range(min(len(p) for p in parts)):
        fs = [p[i] for p in parts]
        folds.append(Fold(fs[0].name, *(sum((getattr(f, a) for f in fs), []) for a in ("train", "dev", "test")),
                          dev_from_train=any(f.dev_from_train for f in fs)))
    return folds


def monitored_metric(monitor, loss_weights):
    """The Keras history key that early stopping and the kept checkpoint follow: the dev utterance
    strength MAE (`strength.monitor: strength_mae`, the paper) unless that head has no weight, when
    it falls back to the weighted total dev loss, as with `strength.monitor: loss`."""
    if monitor == "strength_mae" and (loss_weights or {}).get("strength", 1.0) > 0:
        return "val_strength_mae"
    return "val_loss"


def run(cfg, out, d, callbacks=()):
    manifest, rs = d.manifest, d.records
    label_names = list(cfg.data.emotions)
    strengths, _, label_info = strength_labels(cfg, manifest, out)
    table = label_table(cfg, manifest, strengths, label_names)
    unlabelled = data.labelled(cfg, manifest)
    unlabelled = unlabelled[~unlabelled["utterance_id"].isin(set(table["utterance_id"]))]
    if len(unlabelled):
        d.skip("strength labels", unlabelled, "no strength label (openSMILE failed on it, or no ranking "
                                              "function for its speaker and emotion)")
    folds = fold_list(cfg, table)
    unseens = unseen_corpora(cfg)
    monitor = monitored_metric(cfg.strength.monitor, cfg.strength.loss_weights)
    # every utterance of the corpus: per-speaker statistics use all of a speaker's audio
    second_input = F.Functionals(cfg, d.corpus) if cfg.data.functionals else None
    if second_input is not None:
        print(f"  second input: {second_input.dim} {cfg.data.functionals} functionals per utterance")

    def train_one(fold, fold_dir):
        stage_dir = os.path.join(fold_dir, "strengthnet")
        # the fold's scaler, fitted on what it trains on (with train.select last, dev as well)
        scaler, fz = second_input.fold(fold.train) if second_input is not None else (None, None)
        if loop.finished_stage(cfg, stage_dir):  # trained, but stopped before its test metrics were written
            model = loop.load_model(os.path.join(stage_dir, "best.keras"))
        else:
            stats = data.training_stats(rs, cfg, fold.train)
            weights = None
            if cfg.train.class_weights:
                weights = class_weights(np.eye(len(label_names))[table.loc[fold.train, "label"].to_numpy(int)], "hard")
            train_ds = strength_dataset(rs, cfg, fold.train, table, shuffle=True, perturbed=True, weights=weights,
                                        functionals=fz)
            dev_ds = strength_dataset(rs, cfg, fold.dev, table, functionals=fz) if len(fold.dev) else None
            keras.utils.set_random_seed(cfg.seed)
            with loop.strategy(cfg.train.strategy).scope():
                model = compile_model(build_model(cfg, rs, stats, second_input.dim if second_input else 0), cfg)
            model = loop.fit(model, train_ds, dev_ds, stage_dir, cfg, callbacks, monitor=monitor)
        res, predictions = evaluate(cfg, model, rs, fold.test, table, label_names, functionals=fz)
        write_predictions(predictions, os.path.join(fold_dir, "test_predictions.csv"))
        plot_strength(predictions["strength_label"].to_numpy(), predictions["predicted_strength"].to_numpy(),
                      predictions["emotion"].map(label_names.index).to_numpy(), label_names,
                      os.path.join(out, "plots", f"strength_{fold.name}.png"),
                      f"{fold.name}: MAE {res['overall']['mae']:.3f}, SRCC {res['overall']['srcc']:.3f}")
        res.update(fold=fold.name, monitor=monitor, **fold.to_dict())
        # By name: with train.select last/average the loop trains on copies of the folds.
        if cfg.data.eval_corpora and fold.name == folds[0].name:
            res["unseen"] = unseen(cfg, unseens, model, manifest, label_names, out,
                                   data.training_stats(rs, cfg, fold.train), second_input, scaler)
        print(f"fold {fold.name}: strength MAE {res['overall']['mae']:.3f} LCC {res['overall']['lcc']:.3f} "
              f"SRCC {res['overall']['srcc']:.3f}; emotion WA {res['emotion']['wa']:.3f}"
              + (f"; SRCC vs true strength {res['srcc_vs_truth']:.3f}" if "srcc_vs_truth" in res else "")
              + (f" ({res['srcc_vs_truth_pure']:.3f} on {res['n_pure']} pure)" if "srcc_vs_truth_pure" in res else ""))
        return model, res

    results, first = loop.run_folds(
        cfg, out, folds, train_one, lambda fold_dir: loop.load_model(os.path.join(fold_dir, "strengthnet", "best.keras")))
    # a functionals input cannot be computed by a serving graph (the config refuses to export it)
    export = None if first is None or second_input is not None else loop.Export(first, rs.frontend, {
        "emotion_head": "probabilities", "strength_head": "utterance strength in [0, 1]"})
    return loop.finish(cfg, out, results, label_names, fold_means(results),
                       extra={"strength_labels": label_info, "functionals": cfg.data.functionals}, export=export,
                       corpus="+".join(sorted(manifest["corpus"].unique())), data=d)


def fold_means(results):
    """`(name, fold → number)` pairs that the run summary averages over the folds: strength MAE,
    SRCC, LCC, CCC, emotion WA and UA; the SRCCs against the true strength (synthetic corpora)
    and the normal-vs-strong intensity AUC of the predictions and of the labels themselves
    (RAVDESS), when every fold has them."""
    means = [("mae", lambda r: r["overall"]["mae"]), ("srcc", lambda r: r["overall"]["srcc"]),
             ("emotion_wa", lambda r: r["emotion"]["wa"]), ("lcc", lambda r: r["overall"]["lcc"]),
             ("ccc", lambda r: r["overall"]["ccc"]), ("emotion_ua", lambda r: r["emotion"]["ua"])]
    for key in ("srcc_vs_truth", *(f"srcc_vs_truth_{subset}" for subset in SUBSETS)):
        if all(key in r for r in results):
            means.append((key, lambda r, key=key: r[key]))
    for key, name in (("auc", "intensity_auc"), ("labels_auc", "intensity_labels_auc")):
        if all(key in r.get("intensity", {}) for r in results):
            means.append((name, lambda r, key=key: r["intensity"][key]))
    return means


def unseen_corpora(cfg):
    """`[(name, manifest, records config)]` of `data.eval_corpora` (`data.eval_corpus`), checked
    before anything is trained: StrengthNet scores an unseen corpus against strength labels of its
    own (ranking functions fitted on a speaker's neutral and emotional utterances, or with
    `strength.labels: manifest` the manifest's `strength`), which unlabelled audio lacks.
    Raises CorpusError naming the corpus."""
    out = []
    st = cfg.strength
    for entry in cfg.data.eval_corpora:
        name, man, sub_cfg = data.eval_corpus(cfg, entry)
        emotional = man["emotion"].isin([e for e in cfg.data.emotions if e != st.neutral])
        if st.labels == "manifest":
            ok = bool((emotional & man["strength"].notna()).any())
            lacks = f"no utterance of {', '.join(e for e in cfg.data.emotions if e != st.neutral)} with a strength"
        else:
            neutral = set(man.loc[man["emotion"] == st.neutral, "speaker"].astype(str))
            ok = bool(neutral & set(man.loc[emotional, "speaker"].astype(str)))
            lacks = f"no speaker with both {st.neutral!r} and emotional utterances (its ranking functions need them)"
        if not ok:
            raise CorpusError(f"data.eval_corpora: {name}: StrengthNet scores an unseen corpus against strength "
                              f"labels of its own, and it has {lacks}; to predict unlabelled audio, run "
                              "keras_ser-predict on the run's export")
        out.append((name, man, sub_cfg))
    return out


def unseen(cfg, corpora, model, train_manifest, label_names, out, train_stats=None, second_input=None, scaler=None):
    """Test on corpora never trained on (`unseen_corpora`): each labelled by its own ranking
    functions; also the training corpora's ranking functions (per emotion) applied to them (the
    paper's R_corpus rows). Their features are normalised as `data.eval_normalization` says,
    against `train_stats`; for a model with a functionals input (`second_input`, the run's
    `utterance_features.Functionals`), theirs likewise, in the fold's `scaler`'s space."""
    res = {}
    X_train = None
    for name, man, sub_cfg in corpora:
        rs = data.prepare_records(sub_cfg, man)
        strengths, _, info = strength_labels(cfg, man, os.path.join(out, "unseen", name))
        table = label_table(cfg, man, strengths, label_names)
        fz = None
        if second_input is not None:  # the utterances scored here (`table`), standardised over the whole corpus
            fz = second_input.unseen(types.SimpleNamespace(name=name, corpus=man, scored=table), scaler)
        r, predictions = evaluate(cfg, model, rs, table.index.tolist(), table, label_names,
                                  normalize=data.eval_normalizer(cfg, rs, train_stats), functionals=fz)
        r["normalization"] = cfg.data.eval_normalization or cfg.data.normalization
        os.makedirs(os.path.join(out, "unseen", name), exist_ok=True)
        write_predictions(predictions, os.path.join(out, "unseen", name, "predictions.csv"))
        r["strength_labels"] = info
        # R_train(·): the training corpora's ranking functions (one per emotion) on this corpus.
        if cfg.strength.labels == "ranking":
            X_eval, _ = functionals(cfg, man)
            if X_train is None:
                X_train, _ = functionals(cfg, train_manifest)
            for corpus in sorted(train_manifest["corpus"].unique()):
                sel = (train_manifest["corpus"] == corpus).to_numpy()
                lab = fit_labeler(cfg, X_train[sel], train_manifest[sel], per="emotion")
                s = lab.strengths(X_eval, man["speaker"].to_numpy(str), man["emotion"].to_numpy(str), cfg.strength.normalise)
                good = np.isfinite(s) & np.isfinite(strengths) & man["emotion"].isin(label_names).to_numpy()
                r[f"R_{corpus}"] = M.regression_metrics(strengths[good], s[good])
        res[name] = r
    return res


def builders(cfg):
    return [build_strengthnet]


register(System("strengthnet", run, builders, frontend_params))
