"""Emotion profiles (EPR, PAPERS.md §3) as pure NumPy functions.

An emotion profile is the `(segments, K)` matrix of a segment classifier's posteriors over one
utterance. The refinery trains network t on segment labels made from network t-1's profiles:

    refine_labels("sepr", p, y)          p                    (sEPR)
    refine_labels("pepr", p, y)          (p + onehot(y)) / 2   (pEPR)
    refine_labels("hard_dynamic", p, y)  onehot(argmax p)      per segment
    refine_labels("soft_static", p, y)   mean_s p              the same row on every segment

The utterance decision is a random forest on `profile_statistics(p)`: per class, over the
segments, mean, standard deviation (population), minimum, maximum, the percentiles (linear
interpolation, NumPy's default) and the share of segments whose argmax is that class.
`keras_ser.layers.ProfileStatistics` computes the same vector in the TensorFlow graph (tested
equal), so an export goes from audio to the forest's probabilities.
"""

import numpy as np

REFINERIES = ("sepr", "pepr", "hard_dynamic", "soft_static")
PERCENTILES = (10.0, 25.0, 50.0, 75.0, 90.0)


def refine_labels(method, profile, label, num_classes=None):
    """Segment targets for the next network from one utterance's profile.

    Args:
        method: one of `REFINERIES`.
        profile: `(segments, K)` posteriors of the previous network (rows sum to 1).
        label: int. The utterance's label (pEPR's one-hot).
        num_classes: K, when `profile` is None.

    Returns:
        float32 `(segments, K)`, every row a distribution.
    """
    p = np.asarray(profile, np.float64)
    if p.ndim != 2:
        raise ValueError(f"refine_labels: profile must be (segments, K), got shape {p.shape}")
    k = p.shape[1] if num_classes is None else num_classes
    onehot = np.eye(k)[int(label)]
    if method == "sepr":
        out = p / p.sum(1, keepdims=True)
    elif method == "pepr":
        out = (p + onehot) / (p.sum(1, keepdims=True) + 1.0)
    elif method == "hard_dynamic":
        out = np.eye(k)[p.argmax(1)]
    elif method == "soft_static":
        out = np.broadcast_to(p.mean(0) / p.mean(0).sum(), p.shape)
    else:
        raise ValueError(f"refine_labels: unknown method {method!r}; known: {', '.join(REFINERIES)}")
    return np.ascontiguousarray(out, np.float32)


def statistic_names(label_names, percentiles=PERCENTILES):
    """Names of `profile_statistics`'s entries, in order: `<statistic>_<label>`."""
    stats = ["mean", "std", "min", "max"] + [f"p{q:g}" for q in percentiles] + ["argmax_share"]
    return [f"{s}_{lab}" for s in stats for lab in label_names]


def profile_statistics(profile, percentiles=PERCENTILES):
    """The utterance-level statistics of one profile `(segments, K)`: a `((5 + P) * K,)` vector.

    Grouped by statistic (all classes' means, then all classes' standard deviations, ...), in the
    order of `statistic_names`.
    """
    p = np.asarray(profile, np.float64)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"profile_statistics: need a (segments >= 1, K) profile, got shape {p.shape}")
    k = p.shape[1]
    parts = [p.mean(0), p.std(0), p.min(0), p.max(0)]
    if len(percentiles):
        parts += list(np.percentile(p, list(percentiles), axis=0))
    parts.append(np.bincount(p.argmax(1), minlength=k) / p.shape[0])
    return np.concatenate(parts).astype(np.float32)


def statistics_matrix(profiles, percentiles=PERCENTILES):
    """`profile_statistics` of each profile in a list: `(utterances, (5 + P) * K)`."""
    return np.stack([profile_statistics(p, percentiles) for p in profiles])
