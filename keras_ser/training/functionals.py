"""The reference system: openSMILE functionals → standardisation → a scikit-learn classifier.

What a practitioner tries first, made part of the package so that every table compares the
deep systems with it on identical folds (`protocol.folds_file`) and like normalisation
(`data.normalization`):

    functionals   an openSMILE set (`functionals.feature_set`: eGeMAPSv02, ComParE_2016, IS09),
                  extracted in TensorFlow-free worker processes, cached per corpus, set and
                  content; undefined values (NaN) become 0
    normalisation "train": a StandardScaler fitted on the fold's training part; "speaker": every
                  feature first z-scored over all utterances of the same speaker in the corpus
                  (their audio only, whatever their label, test speakers included), then the
                  same scaler
    classifier    `functionals.classifier`: logistic regression (C = 0.1, balanced class weights
                  by default), a linear SVM, or an RBF SVM
    unseen        each fold's classifier scores every corpus of `data.eval_corpora`; with
                  `data.eval_adapt: self_training` it is first refitted on that corpus's own
                  unlabelled audio with its own confident predictions (`self_trained`; not in any
                  paper: transductive, as per-speaker statistics are)

The classifier has nothing to select, so it is fitted on the fold's training and development
utterances together. Per fold: `folds/<fold>/metrics.json` and `predictions.csv`; the first
fold's standardiser and logistic regression are exported as a Keras model whose
`serving_default` takes the functionals (`features`, `(batch, D)`) and returns `emotion`
probabilities and a `status` (1: non-finite input); it loads without keras_ser.

    keras_ser-train functionals/emodb           # Emo-DB, 7 classes, 10-fold (EPR's protocol)
    keras_ser-train functionals/ravdess data.normalization=speaker
"""

import os

import numpy as np

from keras_ser.errors import ConfigError
from keras_ser.training import data, loop
from keras_ser.training import metrics as M
from keras_ser.training import utterance_features as F
from keras_ser.training.registry import System, register
from keras_ser.utils import write_csv


def functionals(cfg, manifest):
    """`(X (N, D), names, errors)` of `functionals.feature_set` for the rows of `manifest` (cached)."""
    return F.functionals(cfg, manifest, cfg.functionals.feature_set)


def make_classifier(cfg):
    """The unfitted scikit-learn pipeline of `functionals`: a StandardScaler and the classifier."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    f = cfg.functionals
    if f.classifier == "logreg":
        clf = LogisticRegression(C=f.C, max_iter=f.max_iter, class_weight=f.class_weight)
    elif f.classifier == "linear_svm":
        clf = LinearSVC(C=f.C, max_iter=f.max_iter, class_weight=f.class_weight)
    else:
        clf = SVC(C=f.C, gamma=f.gamma, class_weight=f.class_weight)
    return make_pipeline(StandardScaler(), clf)


def scores(pipeline, X, num_classes):
    """`(N, K)` class scores: probabilities for the logistic regression, decision values for
    the SVMs; columns of classes absent from the training part stay at -inf."""
    clf = pipeline[-1]
    s = pipeline.predict_proba(X) if hasattr(clf, "predict_proba") else pipeline.decision_function(X)
    s = s.reshape(len(X), -1)
    if s.shape[1] == 1:  # a binary SVM: one decision value for the second class
        s = np.concatenate([-s, s], 1)
    out = np.full((len(X), num_classes), -np.inf)
    out[:, clf.classes_.astype(int)] = s
    return out


def self_trained(cfg, X, y, X_new, num_classes, pipeline):
    """Class-balanced self-training on unlabelled utterances `X_new` (Zou et al., "Unsupervised
    domain adaptation for semantic segmentation via class-balanced self-training", ECCV 2018,
    without their regulariser): for each share q of `functionals.self_training` in turn, the
    current classifier labels `X_new`; of the utterances it gives to each class, the share q it
    is surest of (highest score) join the labelled `(X, y)` with that class; the pipeline (scaler
    and classifier) is refitted on the union. Choosing per class keeps one dominant class from
    taking over the pseudo-labels. `pipeline`: the classifier already fitted on `(X, y)`.
    Returns the last pipeline."""
    for share in cfg.functionals.self_training:
        s = scores(pipeline, X_new, num_classes)
        pred, sure = s.argmax(1), s.max(1)
        chosen = np.concatenate([
            rows[np.argsort(-sure[rows], kind="stable")][:int(np.ceil(share * len(rows)))]
            for rows in (np.flatnonzero(pred == k) for k in range(num_classes))]).astype(int)
        pipeline = make_classifier(cfg).fit(np.concatenate([X, X_new[chosen]]), np.concatenate([y, pred[chosen]]))
    return pipeline


def unseen_scores(cfg, pipeline, X, y, unseen, num_classes):
    """A fold's class scores on an unseen corpus's utterances (`unseen.scored`): by
    `pipeline` (fitted on the fold's `(X, y)`), or with `data.eval_adapt: self_training` by the
    pipeline refitted on every utterance of the corpus that openSMILE read, labels unused
    (`self_trained`)."""
    feature_set = cfg.functionals.feature_set
    if cfg.data.eval_adapt != "self_training":
        return scores(pipeline, F.unseen_features(cfg, unseen, pipeline[0], feature_set), num_classes)
    X_new, rows = F.unseen_corpus_features(cfg, unseen, pipeline[0], feature_set)
    return scores(self_trained(cfg, X, y, X_new, num_classes, pipeline), X_new[rows], num_classes)


def keras_model(pipeline, num_classes, name="functionals"):
    """The fitted StandardScaler + LogisticRegression as a Keras model `{"features": (batch, D)}`
    → `{"emotion": (batch, K)}` of built-in layers only (Normalization, Dense softmax), so the
    export loads anywhere. Probabilities equal scikit-learn's `predict_proba`."""
    import keras

    scaler, clf = pipeline[0], pipeline[-1]
    d = scaler.mean_.shape[0]
    w = np.zeros((d, num_classes), np.float32)
    b = np.zeros(num_classes, np.float32)
    classes = clf.classes_.astype(int)
    if clf.coef_.shape[0] == 1:  # binary: softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]
        w[:, classes[1]], b[classes[1]] = clf.coef_[0], clf.intercept_[0]
        if num_classes > 2:
            raise ValueError("a binary logistic regression cannot give more than two classes")
    else:
        w[:, classes], b[classes] = clf.coef_.T, clf.intercept_
        b[[k for k in range(num_classes) if k not in set(classes)]] = -1e9  # a class never trained on
    inputs = keras.Input((d,), name="features")
    x = keras.layers.Normalization(mean=scaler.mean_, variance=scaler.scale_ ** 2, name="standardize")(inputs)
    out = keras.layers.Dense(num_classes, activation="softmax", name="emotion")(x)
    model = keras.Model({"features": inputs}, {"emotion": out}, name=name)
    model.get_layer("emotion").set_weights([w, b])
    return model


def run(cfg, out, d, callbacks=()):
    # Every utterance of the corpus: per-speaker statistics use all of a speaker's audio, whatever
    # its label (selecting utterances by label would be using the labels).
    corpus = d.corpus
    X, names, errors = functionals(cfg, corpus)
    for path, why in errors.items():
        d.skip("functionals", corpus[corpus["path"] == path], f"openSMILE: {why}")
    ok = np.isfinite(X).all(1)
    corpus, X = corpus[ok], X[ok]
    if cfg.data.normalization == "speaker":
        X = F.speaker_standardised(X, corpus["speaker"].to_numpy(str))
    keep = corpus["emotion"].isin(cfg.data.emotions).to_numpy()
    manifest, X = corpus[keep], X[keep]
    label_names = list(cfg.data.emotions)
    y = manifest["emotion"].map(label_names.index).to_numpy()
    row = {u: i for i, u in enumerate(manifest["utterance_id"])}
    folds = data.fold_list(cfg, manifest)
    unseens = [data.Unseen(cfg, e, with_records=False) for e in cfg.data.eval_corpora]
    print(f"functionals on {cfg.data.corpus}: {len(manifest)} utterances, {X.shape[1]} {cfg.functionals.feature_set} "
          f"functionals, {cfg.functionals.classifier} (C={cfg.functionals.C:g}), {cfg.data.normalization} "
          "normalisation")

    def train_one(fold, fold_dir):
        fit_rows = [row[u] for u in list(fold.train) + list(fold.dev)]
        test_rows = [row[u] for u in fold.test]
        pipeline = make_classifier(cfg).fit(X[fit_rows], y[fit_rows])
        s = scores(pipeline, X[test_rows], len(label_names))
        pred = s.argmax(1)
        res = {**M.classification_metrics(y[test_rows], pred, label_names), "fold": fold.name, **fold.to_dict()}
        if unseens:
            res["unseen"] = loop.score_unseen(cfg, fold_dir, unseens, lambda u: unseen_scores(
                cfg, pipeline, X[fit_rows], y[fit_rows], u, len(label_names)), label_names)
        table = manifest.iloc[test_rows][["utterance_id", "speaker", "emotion"]].assign(
            predicted=np.asarray(label_names, object)[pred], **{f"score_{n}": s[:, k] for k, n in enumerate(label_names)})
        write_csv(table, os.path.join(fold_dir, "predictions.csv"), index=False, float_format="%.6g")
        loop.confusion_plot(out, res, label_names, fold.name)
        print(f"fold {fold.name}: WA {res['wa']:.3f} UA {res['ua']:.3f}")
        return pipeline, res

    def refit_first(fold_dir):
        fold = folds[0]
        fit_rows = [row[u] for u in list(fold.train) + list(fold.dev)]
        return make_classifier(cfg).fit(X[fit_rows], y[fit_rows])

    results, first = loop.run_folds(cfg, out, folds, train_one, refit_first)
    export = None
    if first is not None and cfg.functionals.classifier == "logreg":
        export = loop.Export(keras_model(first, len(label_names)), None, {
            "feature_set": cfg.functionals.feature_set, "feature_names": names, "normalization": cfg.data.normalization,
            "inputs": ("openSMILE functionals of 16 kHz mono audio, NaN as 0"
                       + (", each z-scored with its speaker's own statistics first" if cfg.data.normalization == "speaker"
                          else ""))})
    extra = {"feature_set": cfg.functionals.feature_set, "classifier": cfg.functionals.classifier, "C": cfg.functionals.C,
             "normalization": cfg.data.normalization, "features": len(names)}
    return loop.finish(cfg, out, results, label_names, extra=extra, export=export, data=d)


def builders(cfg):
    return []  # no Keras builder: model.params must be empty


def check(cfg):
    if cfg.train.strategy == "multi_worker":
        raise ConfigError("train.strategy: the functionals system fits a scikit-learn classifier on one machine; "
                          "multi_worker is for the Keras systems")


register(System("functionals", run, builders, check=check))
