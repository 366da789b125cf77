"""Hard, soft and existence targets from per-annotator labels (Ando et al., Interspeech 2019).

With N annotators and K target emotions, annotator n marks class k with h_k^n ∈ {0, 1} (an
annotator may mark several). Let c_k = Σ_n h_k^n.

- hard: one-hot of the dominant class, the unique label with the most votes among *all* labels
  given (non-target emotions such as "frustrated" included). Utterances whose dominant label is
  tied or is not a target emotion have no hard target.
- soft: (α + c_k) / (αK + Σ_j c_j), α = 0.75 by default (label smoothing by the vote counts).
- existence: q(e₁|c_k) = 1 if any annotator gave c_k (c_k > 0). Every utterance is usable; those
  with no target emotion are all-negative.

Training sets: "dominant" keeps the utterances with a hard target, "all" keeps every utterance
(needed for soft targets on "all" and for MLEE on "all"). Test sets always use the dominant
utterances and their hard targets, as in the paper.

Corpora with a single label per utterance (Emo-DB, RAVDESS, ...) count as one annotator who gave
`emotion`: hard = soft-with-α=0-limit = existence = one-hot.

>>> vote_counts([[["sad"], ["sad", "neutral"], ["angry"]]], ["neutral", "happy", "sad", "angry"])[0]
array([[1., 0., 2., 1.]])
"""

import collections
import dataclasses

import numpy as np

from keras_ser.config import SOFT_WEIGHTINGS, TRAIN_SETS

TARGET_KINDS = ("hard", "soft", "existence")


def _annotations_of(annotations, emotion):
    if annotations is None or (isinstance(annotations, float) and np.isnan(annotations)) or len(annotations) == 0:
        return [[emotion]] if isinstance(emotion, str) and emotion else []
    return [list(a) for a in annotations]


def vote_counts(annotations, label_names, emotions=None):
    """Per-class annotator counts and the dominant label of each utterance.

    Args:
        annotations: sequence (one per utterance) of per-annotator label lists, or None where the
            corpus has a single label (then `emotions` gives it).
        label_names: the K target emotions.
        emotions: optional sequence of single labels, used where `annotations` is None.

    Returns:
        `(counts, dominant)`: float array `(N, K)` of c_k, and int array `(N,)` with the index of the
        dominant target class or -1 (tie, or the dominant label is not a target).
    """
    index = {n: i for i, n in enumerate(label_names)}
    emotions = [None] * len(annotations) if emotions is None else list(emotions)
    counts = np.zeros((len(annotations), len(label_names)), np.float64)
    dominant = np.full(len(annotations), -1, np.int64)
    for u, (ann, emo) in enumerate(zip(annotations, emotions)):
        votes = collections.Counter()
        for labels in _annotations_of(ann, emo):
            for lab in set(labels):
                votes[lab] += 1
                if lab in index:
                    counts[u, index[lab]] += 1
        ranked = votes.most_common(2)
        if ranked and ranked[0][0] in index and (len(ranked) == 1 or ranked[1][1] < ranked[0][1]):
            dominant[u] = index[ranked[0][0]]
    return counts, dominant


def dominant_labels(annotations, label_names, emotions=None):
    """Index of the dominant target class per utterance, -1 where there is none."""
    return vote_counts(annotations, label_names, emotions)[1]


def soft_targets(counts, alpha=0.75):
    """(α + c_k) / (αK + Σ_j c_j) per row; α > 0 keeps rows without target votes well defined (uniform)."""
    counts = np.asarray(counts, np.float64)
    if alpha < 0:
        raise ValueError(f"soft_targets: alpha must be >= 0, got {alpha}")
    k = counts.shape[-1]
    denom = alpha * k + counts.sum(-1, keepdims=True)
    if np.any(denom == 0):
        raise ValueError("soft_targets: a row has no target votes and alpha = 0 (undefined)")
    return (alpha + counts) / denom


def existence_targets(counts):
    """1 where any annotator gave the class."""
    return (np.asarray(counts) > 0).astype(np.float64)


@dataclasses.dataclass
class TargetSet:
    """Targets for a list of utterances.

    Attributes:
        ids: utterance ids (rows).
        targets: float32 `(N, K)`, the training targets of `kind`.
        dominant: int `(N,)`, the hard label (-1: none).
        usable: bool `(N,)`, rows in the chosen training set.
        kind: "hard", "soft" or "existence".
    """

    ids: list
    targets: np.ndarray
    dominant: np.ndarray
    usable: np.ndarray
    kind: str

    def subset(self, ids):
        pos = {u: i for i, u in enumerate(self.ids)}
        rows = [pos[u] for u in ids]
        return TargetSet([self.ids[i] for i in rows], self.targets[rows], self.dominant[rows], self.usable[rows], self.kind)


def make_targets(manifest, label_names, kind="hard", train_set="dominant", alpha=0.75):
    """Targets for every row of a manifest (see the module docstring).

    Args:
        manifest: DataFrame with `utterance_id`, `emotion` and `annotations`.
        label_names: the K target emotions.
        kind: "hard", "soft" or "existence".
        train_set: "dominant" (rows with a hard label) or "all" (every row; not with "hard").
        alpha: soft-target smoothing.

    Returns:
        `TargetSet`.
    """
    if kind not in TARGET_KINDS:
        raise ValueError(f"targets: kind {kind!r} is not one of {TARGET_KINDS}")
    if train_set not in TRAIN_SETS:
        raise ValueError(f"targets: train_set {train_set!r} is not one of {TRAIN_SETS}")
    if kind == "hard" and train_set == "all":
        raise ValueError("targets: hard targets exist only for the dominant set (train_set=dominant)")
    anns = manifest["annotations"].tolist() if "annotations" in manifest else [None] * len(manifest)
    counts, dominant = vote_counts(anns, label_names, manifest["emotion"].tolist())
    if kind == "hard":
        targets = np.eye(len(label_names))[np.maximum(dominant, 0)] * (dominant >= 0)[:, None]
    elif kind == "soft":
        targets = soft_targets(counts, alpha)
    else:
        targets = existence_targets(counts)
    usable = dominant >= 0 if train_set == "dominant" else np.ones(len(dominant), bool)
    return TargetSet(manifest["utterance_id"].tolist(), targets.astype(np.float32), dominant, usable, kind)


def weighting_targets(targets, by="mass"):
    """What class weights count for softmax targets: the targets themselves ("mass") or, for
    "argmax", the indicator of each target's largest entries, ties sharing one example's count.

    >>> weighting_targets([[0.5, 0.25, 0.25], [0.4, 0.4, 0.2]], "argmax")
    array([[1. , 0. , 0. ],
           [0.5, 0.5, 0. ]])
    """
    t = np.asarray(targets, np.float64)
    if by == "mass":
        return t
    if by not in SOFT_WEIGHTINGS:
        raise ValueError(f"soft_weighting: {by!r} is not one of {', '.join(SOFT_WEIGHTINGS)}")
    top = (t == t.max(1, keepdims=True)).astype(np.float64)
    return top / top.sum(1, keepdims=True)


def class_weights(targets, kind):
    """Per-class weights from training targets.

    Softmax targets (hard, soft): inverse class frequency of the target mass, normalised to mean 1
    over the classes present; the weight of an example is Σ_k w_k t_k.
    Existence: for each class, inverse existent / non-existent frequency, `(pos (K,), neg (K,))`
    with pos_k = N / (2 n_k⁺) and neg_k = N / (2 n_k⁻) (1 when a side is empty).

    Returns:
        `(K,)` for softmax targets, or `(pos, neg)` for existence.
    """
    t = np.asarray(targets, np.float64)
    if kind == "existence":
        n = len(t)
        pos = t.sum(0)
        neg = n - pos
        return (np.where(pos > 0, n / (2 * np.maximum(pos, 1)), 1.0), np.where(neg > 0, n / (2 * np.maximum(neg, 1)), 1.0))
    mass = t.sum(0)
    present = mass > 0
    w = np.where(present, mass.sum() / np.maximum(mass, 1e-12) / max(present.sum(), 1), 0.0)
    return w
