"""MLEE targets (hard, soft, existence), class weights and the weighted BCE, on hand-worked examples."""

import numpy as np
import pandas as pd
import pytest

from keras_ser.labels.emotion_targets import (
    class_weights,
    dominant_labels,
    existence_targets,
    make_targets,
    soft_targets,
    vote_counts,
    weighting_targets,
)

K4 = ["neutral", "happy", "sad", "angry"]
ANNOTATIONS = [
    [["sad"], ["sad", "neutral"], ["angry"]],     # sad 2, neutral 1, angry 1 -> dominant sad
    [["frustrated"], ["frustrated"], ["sad"]],    # dominant is not a target emotion -> no hard label
    [["happy"], ["sad"]],                         # tie -> no hard label
    [["other"], ["other"]],                       # no target vote at all
    None,                                         # single-label corpus: emotion column
]
EMOTIONS = [None, None, None, None, "angry"]


def test_vote_counts_and_dominant_by_hand():
    counts, dominant = vote_counts(ANNOTATIONS, K4, EMOTIONS)
    np.testing.assert_array_equal(counts, [[1, 0, 2, 1], [0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(dominant, [2, -1, -1, -1, 3])
    # An annotator who repeats a label counts once.
    np.testing.assert_array_equal(vote_counts([[["sad", "sad"]]], K4)[0], [[0, 0, 1, 0]])
    np.testing.assert_array_equal(dominant_labels(ANNOTATIONS, K4, EMOTIONS), dominant)


def test_soft_targets_by_hand():
    counts, _ = vote_counts(ANNOTATIONS, K4, EMOTIONS)
    soft = soft_targets(counts, alpha=0.75)
    # Row 0: (0.75 + c) / (0.75 * 4 + 4) = [1.75, 0.75, 2.75, 1.75] / 7
    np.testing.assert_allclose(soft[0], np.array([1.75, 0.75, 2.75, 1.75]) / 7)
    # Row 1: [0.75, 0.75, 1.75, 0.75] / 4
    np.testing.assert_allclose(soft[1], [0.1875, 0.1875, 0.4375, 0.1875])
    np.testing.assert_allclose(soft[3], [0.25] * 4)  # no target vote: uniform
    np.testing.assert_allclose(soft.sum(1), 1.0)
    np.testing.assert_allclose(soft_targets([[0, 2, 0, 0]], alpha=0.0), [[0, 1, 0, 0]])
    with pytest.raises(ValueError, match="alpha = 0"):
        soft_targets([[0, 0, 0, 0]], alpha=0.0)


def test_existence_targets_by_hand():
    counts, _ = vote_counts(ANNOTATIONS, K4, EMOTIONS)
    np.testing.assert_array_equal(existence_targets(counts),
                                  [[1, 0, 1, 1], [0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]])


def test_make_targets_training_sets():
    man = pd.DataFrame({"utterance_id": list("abcde"), "annotations": ANNOTATIONS, "emotion": EMOTIONS})
    hard = make_targets(man, K4, "hard", "dominant")
    np.testing.assert_array_equal(hard.usable, [True, False, False, False, True])
    np.testing.assert_array_equal(hard.targets[0], [0, 0, 1, 0])
    np.testing.assert_array_equal(hard.targets[1], [0, 0, 0, 0])
    soft_all = make_targets(man, K4, "soft", "all")
    assert soft_all.usable.all()
    ex_dom = make_targets(man, K4, "existence", "dominant")
    np.testing.assert_array_equal(ex_dom.usable, hard.usable)
    sub = soft_all.subset(["e", "a"])
    assert sub.ids == ["e", "a"] and list(sub.dominant) == [3, 2]
    with pytest.raises(ValueError, match="dominant set"):
        make_targets(man, K4, "hard", "all")
    with pytest.raises(ValueError, match="kind"):
        make_targets(man, K4, "fuzzy")


def test_class_weights_by_hand():
    hard = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], float)
    np.testing.assert_allclose(class_weights(hard, "hard"), [4 / 3 / 2, 4 / 1 / 2])
    ex = np.array([[1, 0], [1, 1], [0, 0], [1, 0]], float)
    pos, neg = class_weights(ex, "existence")
    np.testing.assert_allclose(pos, [4 / (2 * 3), 4 / (2 * 1)])
    np.testing.assert_allclose(neg, [4 / (2 * 1), 4 / (2 * 3)])
    # A class that never exists (or always exists) gets weight 1 on the empty side.
    pos, neg = class_weights(np.array([[1, 0], [1, 0]], float), "existence")
    np.testing.assert_allclose(pos, [2 / (2 * 2), 1.0])
    np.testing.assert_allclose(neg, [1.0, 2 / (2 * 2)])


def test_soft_targets_weighted_by_mass_or_by_their_argmax():
    # Three utterances lean neutral, one leans happy: by mass, happy holds 1.5 of 4.
    soft = np.array([[0.7, 0.3], [0.7, 0.3], [0.7, 0.3], [0.4, 0.6]])
    w = class_weights(weighting_targets(soft, "mass"), "soft")
    np.testing.assert_allclose(w, [4 / 2.5 / 2, 4 / 1.5 / 2])
    # An example weighs Σ_k w_k t_k: the happy-leaning one only 1.17x a neutral-leaning one.
    np.testing.assert_allclose(soft @ w, [0.96, 0.96, 0.96, 1.12])
    # By argmax the classes count 3 and 1, as hard targets would: the lone happy example weighs 3x.
    counted = weighting_targets(soft, "argmax")
    w = class_weights(counted, "soft")
    np.testing.assert_allclose(w, [4 / 3 / 2, 4 / 1 / 2])
    np.testing.assert_allclose(counted @ w, [2 / 3, 2 / 3, 2 / 3, 2.0])
    # A tie shares the example between its classes; hard targets are unchanged.
    np.testing.assert_allclose(weighting_targets([[0.4, 0.4, 0.2]], "argmax"), [[0.5, 0.5, 0.0]])
    hard = np.eye(3)[[0, 2, 2]]
    np.testing.assert_array_equal(weighting_targets(hard, "argmax"), hard)
    with pytest.raises(ValueError, match="soft_weighting"):
        weighting_targets(soft, "votes")


def test_weighted_bce_by_hand():
    from keras_ser.losses import WeightedBinaryCrossentropy

    y = np.array([[1.0, 0.0]], "float32")
    p = np.array([[0.8, 0.3]], "float32")
    loss = WeightedBinaryCrossentropy([2.0, 1.0], [1.0, 3.0])
    expected = (-(2.0 * np.log(0.8)) - 3.0 * np.log(0.7)) / 2
    np.testing.assert_allclose(float(loss(y, p)), expected, rtol=1e-5)
    plain = WeightedBinaryCrossentropy()
    np.testing.assert_allclose(float(plain(y, p)), (-np.log(0.8) - np.log(0.7)) / 2, rtol=1e-5)
    again = WeightedBinaryCrossentropy.from_config(loss.get_config())
    assert again.pos_weight == [2.0, 1.0] and again.neg_weight == [1.0, 3.0]
