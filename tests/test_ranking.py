"""The rank-SVM (against scikit-learn's LinearSVC on explicit difference vectors) and strength labels."""

import numpy as np
import pytest

from keras_ser.labels.ranking import (
    RankSVM,
    StrengthLabeler,
    _block_loss_grad,
    _group_loss_grad,
    _pairs_loss_grad,
    order_accuracy,
)


def test_block_loss_equals_explicit_pairs():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(50)
    hi, lo = np.arange(0, 20), np.arange(20, 50)
    i, j = (a.ravel() for a in np.meshgrid(hi, lo, indexing="ij"))
    l1, g1 = _block_loss_grad(s, hi, lo)
    l2, g2 = _pairs_loss_grad(s, i, j)
    assert l1 == pytest.approx(l2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, atol=1e-10)
    # Similar groups: closed form against the explicit pair sum.
    grp = np.array([3, 7, 11, 40])
    lg, gg = _group_loss_grad(s, grp)
    explicit = sum((s[a] - s[b]) ** 2 for k, a in enumerate(grp) for b in grp[k + 1:])
    assert lg == pytest.approx(explicit)
    eps, e = 1e-6, np.zeros(50)
    e[7] = eps
    assert gg[7] == pytest.approx((_group_loss_grad(s + e, grp)[0] - _group_loss_grad(s - e, grp)[0]) / (2 * eps), rel=1e-5)


def test_rank_svm_equals_linear_svc_on_difference_vectors():
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(1)
    X = rng.random((60, 6))
    hi, lo = np.arange(30), np.arange(30, 60)
    X[hi] += 0.3 * rng.random(6)
    ours = RankSVM(C=0.1, tol=1e-10).fit(X, [(hi, lo)])
    i, j = (a.ravel() for a in np.meshgrid(hi, lo, indexing="ij"))
    d = X[i] - X[j]
    # ±d with labels ±1 doubles each pair's loss: LinearSVC's C is half of ours.
    svc = LinearSVC(C=0.05, loss="squared_hinge", fit_intercept=False, tol=1e-10, max_iter=100000)
    svc.fit(np.vstack([d, -d]), np.r_[np.ones(len(d)), -np.ones(len(d))])
    np.testing.assert_allclose(ours.coef_, svc.coef_[0], atol=1e-4)


def test_order_accuracy_counts_ties_as_half():
    assert order_accuracy([2, 3], [1]) == 1.0
    assert order_accuracy([1], [2, 3]) == 0.0
    assert order_accuracy([2], [2]) == 0.5
    assert order_accuracy([1, 3], [2]) == 0.5


def _toy(rng, n_speakers=3, n=30, d=8):
    """Features whose first dimension grows with a known strength, per speaker offsets."""
    X, spk, emo, truth = [], [], [], []
    for s in range(n_speakers):
        offset = rng.standard_normal(d)
        for e in ("neutral", "angry", "sad"):
            strength = np.zeros(n) if e == "neutral" else rng.uniform(0.1, 1.0, n)
            x = offset + 0.05 * rng.standard_normal((n, d))
            x[:, 0] += strength * (1 if e == "angry" else -1)
            x[:, 1] += strength * 0.5
            X.append(x)
            spk += [f"s{s}"] * n
            emo += [e] * n
            truth.append(strength)
    return np.vstack(X), np.array(spk), np.array(emo), np.concatenate(truth)


@pytest.mark.parametrize("per", ["speaker_emotion", "emotion"])
def test_strength_labels_recover_a_known_strength(per, tmp_path):
    import scipy.stats

    X, spk, emo, truth = _toy(np.random.default_rng(2))
    lab = StrengthLabeler(C=0.1, per=per).fit(X, spk, emo)
    st = lab.strengths(X, spk, emo)
    assert np.all(st[emo == "neutral"] == 0) and np.all((st >= 0) & (st <= 1))
    for e in ("angry", "sad"):
        for s in np.unique(spk):
            sel = (emo == e) & (spk == s)
            assert st[sel].max() == 1.0  # range-normalised per group, as in the original pipeline
        assert scipy.stats.spearmanr(st[emo == e], truth[emo == e])[0] > 0.9
    acc, per_group = lab.order_accuracy(X, spk, emo)
    assert acc > 0.95 and len(per_group) == 6
    again = StrengthLabeler.load(lab.save(str(tmp_path / "r.json")))
    np.testing.assert_allclose(again.strengths(X, spk, emo), st)


def test_labeler_scores_a_new_corpus_and_rejects_bad_input(tmp_path):
    rng = np.random.default_rng(3)
    X, spk, emo, truth = _toy(rng)
    lab = StrengthLabeler(per="emotion").fit(X, spk, emo)
    X2, spk2, emo2, truth2 = _toy(np.random.default_rng(4), n_speakers=2)
    import scipy.stats

    st = lab.strengths(X2, np.char.add("new", spk2), emo2, normalise="group")
    assert scipy.stats.spearmanr(st[emo2 == "angry"], truth2[emo2 == "angry"])[0] > 0.9
    # One range over the corpus keeps the speakers' offsets: still ordered, less well.
    st = lab.strengths(X2, np.char.add("new", spk2), emo2, normalise="corpus")
    assert scipy.stats.spearmanr(st[emo2 == "angry"], truth2[emo2 == "angry"])[0] > 0.3
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        StrengthLabeler().fit(bad, spk, emo)
    with pytest.raises(ValueError, match="no speaker has both"):
        StrengthLabeler().fit(X[emo != "neutral"], spk[emo != "neutral"], emo[emo != "neutral"])
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="x.json"):
        StrengthLabeler.load(str(tmp_path / "x.json"))
