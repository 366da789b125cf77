"""openSMILE functionals per utterance, shared by the reference system (`system: functionals`)
and the networks that take them as a second input (`data.functionals`): extraction in
TensorFlow-free worker processes (`tfrecords_tools.opensmile_features`), cached per corpus, set
and files (one cache for every caller: StrengthNet's ranking labels, the reference, a second
input); standardisation per speaker or per corpus; an unseen corpus's functionals in the space
of a fold's scaler.
"""

import hashlib
import json
import os

import numpy as np

from keras_ser.errors import CorpusError
from keras_ser.utils import data_home
from tfrecords_tools.opensmile_features import ExtractionError, extract_functionals


def cache_path(corpus, paths, feature_set):
    """`$KERAS_SER_DATA/functionals/<corpus>-<set>-<hash of the paths>.npz`: one file per list of
    files, whatever the labels say (the cache itself checks each file's bytes)."""
    digest = hashlib.sha256(json.dumps([os.fspath(p) for p in paths]).encode()).hexdigest()[:12]
    return os.path.join(data_home(), "functionals", f"{corpus}-{feature_set}-{digest}.npz")


def functionals(cfg, manifest, feature_set, non_finite="zero"):
    """`(X (N, D), names, errors)` for the rows of `manifest`, extracted and cached per corpus. With
    `non_finite="zero"` undefined values (NaN) become 0, with `"error"` such a file fails; a file
    openSMILE fails on is a row of NaN named in `errors`. Raises ExtractionError when no file of
    the manifest gives functionals."""
    X, names, errors = None, None, {}
    for corpus in sorted(manifest["corpus"].unique()):
        rows = np.flatnonzero(manifest["corpus"].to_numpy() == corpus)
        paths = manifest["path"].to_numpy()[rows].tolist()
        try:
            f, names, err = extract_functionals(paths, feature_set, max(1, cfg.data.num_workers),
                                                cache_path(corpus, paths, feature_set), non_finite=non_finite)
        except ExtractionError as exc:  # this corpus gave none: its rows stay NaN
            errors.update(exc.errors)
            continue
        errors.update(err)
        if X is None:
            X = np.full((len(manifest), len(names)), np.nan)
        X[rows] = f
    if X is None:
        raise ExtractionError(errors)
    errors = {p: errors[p] for p in manifest["path"] if p in errors}  # in the manifest's order
    return X, names, errors


def speaker_standardised(X, speakers):
    """Each row z-scored with its speaker's mean and standard deviation over all of the
    speaker's rows (a constant feature stays 0)."""
    out = np.empty_like(X, dtype=np.float64)
    for s in np.unique(speakers):
        rows = speakers == s
        mean, sd = X[rows].mean(0), X[rows].std(0)
        out[rows] = (X[rows] - mean) / np.where(sd > 0, sd, 1.0)
    return out


def unseen_features(cfg, unseen, scaler, feature_set):
    """The functionals of the utterances an unseen corpus's model is run on (`unseen.scored`,
    in its order), standardised as `data.normalization` / `data.eval_normalization` say: per speaker as
    in training; with training-split normalisation "train" as they are (the fold's scaler
    follows), "corpus" or "speaker" z-scored with the unseen corpus's (speaker's) own statistics,
    over all its utterances (`unseen.corpus`), labels unused, then put in the scaler's space
    (`scaler`: a fitted StandardScaler)."""
    X, rows = unseen_corpus_features(cfg, unseen, scaler, feature_set)
    return X[rows]


def unseen_corpus_features(cfg, unseen, scaler, feature_set):
    """`(X, rows)`: the functionals of every utterance of `unseen.corpus` that openSMILE could
    read, whatever its label (the unlabelled audio of self-training), standardised as
    `unseen_features` says, and the rows of `unseen.scored`'s utterances among them."""
    X, _, _ = functionals(cfg, unseen.corpus, feature_set)
    keep = np.isfinite(X).all(1)
    corpus, X = unseen.corpus[keep], X[keep]
    mode = cfg.data.normalization if cfg.data.normalization != "train" else (cfg.data.eval_normalization or "train")
    if mode == "speaker":
        X = speaker_standardised(X, corpus["speaker"].to_numpy(str))
    elif mode == "corpus":
        X = speaker_standardised(X, np.zeros(len(X), int))
    if cfg.data.normalization == "train" and mode != "train":
        X = X * scaler.scale_ + scaler.mean_
    row = dict(zip(corpus["utterance_id"], range(len(corpus))))
    scored = unseen.scored
    missing = [p for u, p in zip(scored["utterance_id"], scored["path"]) if u not in row]
    if missing:
        raise CorpusError(f"data.eval_corpora: {unseen.name}: openSMILE failed on {len(missing)} files (e.g. "
                          f"{missing[0]}): leave them out of its manifest")
    return X, [row[u] for u in scored["utterance_id"]]


class Functionals:
    """The openSMILE functionals of a run's corpus (`data.functionals`: a network's second input),
    per speaker first with `data.normalization: speaker`; `fold(ids)` fits a fold's scaler on the
    training utterances `ids` and returns it with `{utterance_id: standardised vector}` of every
    utterance."""

    def __init__(self, cfg, corpus, X=None):
        """`X`: other per-utterance vectors, one row per row of `corpus`, in place of the
        functionals (standardised the same way)."""
        if X is None:
            X, _, errors = functionals(cfg, corpus, cfg.data.functionals)
            if errors:
                path, why = next(iter(errors.items()))
                raise CorpusError(f"data.functionals: openSMILE failed on {len(errors)} files, e.g. {path}: {why} "
                                  "(leave them out of the manifest, or train without data.functionals)")
        if cfg.data.normalization == "speaker":
            X = speaker_standardised(X, corpus["speaker"].to_numpy(str))
        self.cfg, self.X = cfg, X
        self.row = dict(zip(corpus["utterance_id"], range(len(corpus))))
        self.dim = X.shape[1]

    def fold(self, ids):
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(self.X[[self.row[u] for u in ids]])
        Z = scaler.transform(self.X).astype(np.float32)
        return scaler, {u: Z[i] for u, i in self.row.items()}

    def unseen(self, unseen, scaler):
        """`{utterance_id: vector}` of an unseen corpus's utterances (`unseen.scored`), in `scaler`'s space."""
        Z = scaler.transform(unseen_features(self.cfg, unseen, scaler, self.cfg.data.functionals)).astype(np.float32)
        return dict(zip(unseen.scored["utterance_id"], Z))
