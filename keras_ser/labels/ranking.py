"""Relative-attribute emotion strength: a linear rank-SVM on utterance functionals (StrengthNet §1).

Parikh & Grauman's rank-SVM in the primal, squared hinge, no bias:

    min_w  ½‖w‖² + C Σ_{(i≻j)∈O} max(0, 1 − wᵀ(xᵢ − xⱼ))² + C Σ_{(i~j)∈S} (wᵀ(xᵢ − xⱼ))²

O holds (emotional ≻ neutral) pairs of one speaker; S (optional) pairs of one category. Pairs
are never materialised. O is given as *blocks* (every utterance of `higher` ≻ every utterance of
`lower`), and its loss and gradient are computed from the scores s = Xw by sorting: for each i
in a block the active j are those with s_j > s_i − 1, found by binary search on the sorted lower
scores, and prefix sums of s_j and s_j² give Σ_j (1 − s_i + s_j)² in O(log n). S is given as
groups (all pairs inside a group), whose loss |G|Σs² − (Σs)² is closed-form. One objective
evaluation is O(nd + n log n) time and O(nd) memory, so 100k utterances fit easily (see
benchmarks/bench_ranking.py). L-BFGS minimises the (convex, once-differentiable) objective.

`StrengthLabeler` wraps the original pipeline: features min-max scaled to [0, 1] over the ranking
set; one ranking function per (speaker, emotion) as in the original code (`per="speaker_emotion"`)
or one per emotion over all speakers (`per="emotion"`, needed to score another corpus); scores
range-normalised over the neutral + emotional utterances of each (speaker, emotion) group
(`normalise="group"`, original: every group has one 1.0) or of each emotion over the corpus
(`normalise="corpus"`), neutral utterances set to 0. Saved as JSON (weights, scaler, settings).
"""

import json

import numpy as np
import scipy.optimize

from keras_ser.utils import write_text

FORMAT = "keras_ser.strength_labeler/1"


def _block_loss_grad(s, higher, lower):
    """Σ_{i∈higher, j∈lower} max(0, 1 − s_i + s_j)² and its gradient with respect to s."""
    sh, sl = s[higher], s[lower]
    grad = np.zeros_like(s)
    # For each i: the j with s_j > s_i − 1 are active.
    order = np.sort(sl)
    p1 = np.concatenate([[0.0], np.cumsum(order)])
    p2 = np.concatenate([[0.0], np.cumsum(order * order)])
    n = len(order)
    first = np.searchsorted(order, sh - 1.0, side="right")
    k = n - first
    sum_s = p1[n] - p1[first]
    sum_s2 = p2[n] - p2[first]
    c = 1.0 - sh
    loss = float(np.sum(k * c * c + 2.0 * c * sum_s + sum_s2))
    np.add.at(grad, higher, -2.0 * (k * c + sum_s))
    # For each j: the i with s_i < s_j + 1 are active.
    order_h = np.sort(sh)
    pc = np.concatenate([[0.0], np.cumsum(1.0 - order_h)])
    m = np.searchsorted(order_h, sl + 1.0, side="left")
    np.add.at(grad, lower, 2.0 * (pc[m] + m * sl))
    return loss, grad


def _pairs_loss_grad(s, i, j):
    margin = 1.0 - s[i] + s[j]
    active = margin > 0
    grad = np.zeros_like(s)
    g = 2.0 * margin * active
    np.add.at(grad, i, -g)
    np.add.at(grad, j, g)
    return float(np.sum(margin[active] ** 2)), grad


def _group_loss_grad(s, group):
    """Σ over all pairs {a, b} ⊂ group of (s_a − s_b)² = |G| Σ s² − (Σ s)²."""
    sg = s[group]
    n, total = len(sg), sg.sum()
    grad = np.zeros_like(s)
    np.add.at(grad, group, 2.0 * (n * sg - total))
    return float(n * np.sum(sg * sg) - total * total), grad


class RankSVM:
    """Linear rank-SVM, primal squared hinge, no bias.

    Args:
        C: float. Weight of the pair losses. Defaults to 0.1 (the paper).
        max_iter: int. L-BFGS iterations.
        tol: float. L-BFGS gradient tolerance.

    Attributes (after `fit`):
        coef_: `(d,)` weights w; `score(X) = X @ w`.
        n_iter_, objective_: optimiser iterations and the final objective.
    """

    def __init__(self, C=0.1, max_iter=1000, tol=1e-6):
        if C <= 0:
            raise ValueError(f"RankSVM: C must be > 0, got {C}")
        self.C = float(C)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.coef_ = None

    def fit(self, X, blocks=(), pairs=None, similar_groups=()):
        """Learn w.

        Args:
            X: `(n, d)` features.
            blocks: iterable of `(higher, lower)` index arrays: every higher ≻ every lower.
            pairs: optional `(i, j)` index arrays of explicit ordered pairs i ≻ j.
            similar_groups: iterable of index arrays; all pairs inside a group are "similar".

        Returns:
            self.
        """
        X = np.asarray(X, np.float64)
        blocks = [(np.asarray(h, np.int64), np.asarray(lo, np.int64)) for h, lo in blocks]
        blocks = [(h, lo) for h, lo in blocks if len(h) and len(lo)]
        groups = [np.asarray(g, np.int64) for g in similar_groups if len(g) > 1]
        if not blocks and pairs is None:
            raise ValueError("RankSVM.fit: no ordered pairs")
        C = self.C

        def objective(w):
            s = X @ w
            loss, g = 0.0, np.zeros(len(X))
            for h, lo in blocks:
                lval, lg = _block_loss_grad(s, h, lo)
                loss, g = loss + lval, g + lg
            if pairs is not None:
                lval, lg = _pairs_loss_grad(s, np.asarray(pairs[0]), np.asarray(pairs[1]))
                loss, g = loss + lval, g + lg
            for grp in groups:
                lval, lg = _group_loss_grad(s, grp)
                loss, g = loss + lval, g + lg
            return 0.5 * w @ w + C * loss, w + C * (X.T @ g)

        res = scipy.optimize.minimize(objective, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B",
                                      options={"maxiter": self.max_iter, "gtol": self.tol})
        self.coef_ = res.x
        self.n_iter_ = int(res.nit)
        self.objective_ = float(res.fun)
        return self

    def score(self, X):
        if self.coef_ is None:
            raise RuntimeError("RankSVM: call fit first")
        return np.asarray(X, np.float64) @ self.coef_


def order_accuracy(scores_higher, scores_lower):
    """Fraction of (higher, lower) pairs ordered correctly (ties count ½): the Mann–Whitney AUC."""
    a, b = np.asarray(scores_higher, np.float64), np.asarray(scores_lower, np.float64)
    if not len(a) or not len(b):
        return float("nan")
    order = np.sort(b)
    below = np.searchsorted(order, a, side="left")
    ties = np.searchsorted(order, a, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(a) * len(b)))


class StrengthLabeler:
    """Emotion-strength labels for a corpus from rank-SVMs on utterance functionals.

    Args:
        neutral: str. The reference category. Defaults to "neutral".
        C: float. Rank-SVM C. Defaults to 0.1.
        per: "speaker_emotion" (original code: one function per speaker and emotion) or
            "emotion" (one per emotion over all speakers; pairs still within a speaker).
        similar: bool. Add the similar set S (all pairs inside each (speaker, emotion) group
            and inside each speaker's neutral set). The published labels used none.
    """

    def __init__(self, neutral="neutral", C=0.1, per="speaker_emotion", similar=False):
        if per not in ("speaker_emotion", "emotion"):
            raise ValueError(f"StrengthLabeler: per must be speaker_emotion or emotion, got {per!r}")
        self.neutral, self.C, self.per, self.similar = neutral, float(C), per, bool(similar)
        self.functions = {}  # key "emotion" or "speaker|emotion" -> w
        self.minimum = self.maximum = None
        self.emotions = []
        self.feature_names = None

    # -- fitting ---------------------------------------------------------------------------
    def _scale(self, X):
        span = np.where(self.maximum > self.minimum, self.maximum - self.minimum, 1.0)
        return (np.asarray(X, np.float64) - self.minimum) / span

    def fit(self, X, speakers, emotions, feature_names=None):
        """Fit one ranking function per emotion (or per speaker and emotion).

        Args:
            X: `(n, d)` functionals of the ranking set.
            speakers, emotions: sequences of length n.
            feature_names: optional list of the d feature names (kept in the saved file).
        """
        X = np.asarray(X, np.float64)
        speakers, emotions = np.asarray(speakers, str), np.asarray(emotions, str)
        if len(X) != len(speakers) or len(X) != len(emotions):
            raise ValueError("StrengthLabeler.fit: X, speakers and emotions differ in length")
        if not np.all(np.isfinite(X)):
            raise ValueError("StrengthLabeler.fit: features contain NaN or inf")
        self.minimum, self.maximum = X.min(0), X.max(0)
        self.feature_names = list(feature_names) if feature_names is not None else None
        Xs = self._scale(X)
        self.emotions = sorted(set(emotions) - {self.neutral})
        for emo in self.emotions:
            keys = sorted(set(speakers[emotions == emo])) if self.per == "speaker_emotion" else [None]
            for spk in keys:
                blocks, groups, rows = [], [], []
                for s in sorted(set(speakers[emotions == emo])) if spk is None else [spk]:
                    hi = np.flatnonzero((speakers == s) & (emotions == emo))
                    lo = np.flatnonzero((speakers == s) & (emotions == self.neutral))
                    if len(lo) == 0:
                        continue
                    blocks.append((hi, lo))
                    if self.similar:
                        groups += [hi, lo]
                    rows += [hi, lo]
                if not blocks:
                    continue
                rows = np.unique(np.concatenate(rows))
                remap = np.full(len(X), -1)
                remap[rows] = np.arange(len(rows))
                svm = RankSVM(self.C).fit(Xs[rows], [(remap[h], remap[lo]) for h, lo in blocks],
                                          similar_groups=[remap[g] for g in groups])
                self.functions[emo if spk is None else f"{spk}|{emo}"] = svm.coef_
        if not self.functions:
            raise ValueError(f"StrengthLabeler.fit: no speaker has both {self.neutral!r} and emotional utterances")
        return self

    # -- scoring ---------------------------------------------------------------------------
    def _function(self, speaker, emotion):
        if self.per == "speaker_emotion":
            return self.functions.get(f"{speaker}|{emotion}")
        return self.functions.get(emotion)

    def scores(self, X, speakers, emotions):
        """Raw ranking scores R(x) of each utterance under its emotion's function (NaN if none).

        Neutral utterances are scored with every emotion's function by `strengths`; here they
        get NaN."""
        Xs = self._scale(X)
        out = np.full(len(Xs), np.nan)
        for n, (spk, emo) in enumerate(zip(speakers, emotions)):
            w = self._function(spk, emo)
            if w is not None:
                out[n] = Xs[n] @ w
        return out

    def strengths(self, X, speakers, emotions, normalise="group"):
        """Strength in [0, 1] for every utterance (neutral: 0; no ranking function: NaN).

        Args:
            normalise: "group": min-max over the neutral + emotional utterances of each
                (speaker, emotion), keeping the emotional ones (the original pipeline);
                "corpus": over all speakers' neutral + emotional utterances of each emotion.
        """
        if normalise not in ("group", "corpus"):
            raise ValueError(f"strengths: normalise must be group or corpus, got {normalise!r}")
        Xs = self._scale(X)
        speakers, emotions = np.asarray(speakers, str), np.asarray(emotions, str)
        out = np.full(len(Xs), np.nan)
        out[emotions == self.neutral] = 0.0
        for emo in self.emotions:
            spk_list = sorted(set(speakers[emotions == emo]))
            sets = [[s] for s in spk_list] if normalise == "group" else [spk_list]
            for group in sets:
                rows, vals = [], []
                for s in group:
                    w = self._function(s, emo)
                    if w is None:
                        continue
                    idx = np.flatnonzero(np.isin(speakers, [s]) & np.isin(emotions, [emo, self.neutral]))
                    rows.append(idx)
                    vals.append(Xs[idx] @ w)
                if not rows:
                    continue
                idx, v = np.concatenate(rows), np.concatenate(vals)
                lo, hi = v.min(), v.max()
                norm = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
                keep = emotions[idx] == emo
                out[idx[keep]] = norm[keep]
        return out

    def order_accuracy(self, X, speakers, emotions):
        """Mean over (speaker, emotion) groups of the fraction of (emotional, neutral) pairs ranked right."""
        Xs = self._scale(X)
        speakers, emotions = np.asarray(speakers, str), np.asarray(emotions, str)
        accs = {}
        for emo in self.emotions:
            for s in sorted(set(speakers[emotions == emo])):
                w = self._function(s, emo)
                hi = Xs[(speakers == s) & (emotions == emo)]
                lo = Xs[(speakers == s) & (emotions == self.neutral)]
                if w is not None and len(hi) and len(lo):
                    accs[(s, emo)] = order_accuracy(hi @ w, lo @ w)
        return float(np.mean(list(accs.values()))) if accs else float("nan"), accs

    # -- persistence -------------------------------------------------------------------------
    def save(self, path):
        """Write JSON (atomic): settings, scaler and every ranking function's weights."""
        doc = {"format": FORMAT, "neutral": self.neutral, "C": self.C, "per": self.per, "similar": self.similar,
               "emotions": self.emotions, "feature_names": self.feature_names,
               "minimum": self.minimum.tolist(), "maximum": self.maximum.tolist(),
               "functions": {k: w.tolist() for k, w in self.functions.items()}}
        return write_text(json.dumps(doc), path)

    @classmethod
    def load(cls, path):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable strength-labeler file ({exc})") from None
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: format {doc.get('format')!r}, expected {FORMAT!r}")
        self = cls(doc["neutral"], doc["C"], doc["per"], doc["similar"])
        self.emotions, self.feature_names = doc["emotions"], doc["feature_names"]
        self.minimum, self.maximum = np.asarray(doc["minimum"]), np.asarray(doc["maximum"])
        self.functions = {k: np.asarray(w) for k, w in doc["functions"].items()}
        return self
