import numpy as np
import pandas as pd
import pytest
import scipy.stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion

from keras_ser.training import metrics as M
from keras_ser.training.protocols import (
    check_fold,
    kfold,
    leave_one_group_out,
    make_folds,
    seeded_split,
)


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 4, 300))
    assert M.weighted_accuracy(y, p) == pytest.approx(accuracy_score(y, p))
    assert M.unweighted_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p))
    assert M.macro_f1(y, p, 4) == pytest.approx(f1_score(y, p, average="macro"))
    np.testing.assert_array_equal(M.confusion_matrix(y, p, 4), sk_confusion(y, p, labels=range(4)))


def test_regression_metrics_match_scipy():
    rng = np.random.default_rng(1)
    x = rng.random(200)
    y = 0.7 * x + 0.2 * rng.random(200)
    y[::10] = y[5]  # ties for the rank correlation
    assert M.pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y)[0])
    assert M.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0])
    assert M.mae(x, y) == pytest.approx(np.mean(np.abs(x - y)))
    # CCC by its definition; equals 1 only for identical series, < LCC under a bias.
    cov = np.cov(x, y, bias=True)[0, 1]
    assert M.ccc(x, y) == pytest.approx(2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))
    assert M.ccc(x, x) == pytest.approx(1.0) and M.ccc(x, x + 0.5) < M.pearson(x, x + 0.5)
    # The best constant's MAE: no constant does better than the median.
    floor = M.regression_metrics(y, x)["mae_constant"]
    assert floor == pytest.approx(np.mean(np.abs(y - np.median(y))))
    assert all(floor <= M.mae(y, np.full(len(y), c)) + 1e-12 for c in np.linspace(0, 1, 101))


def _manifest(n_speakers=6, per=10):
    rows = []
    for s in range(n_speakers):
        for i in range(per):
            rows.append({"utterance_id": f"s{s}_{i}", "speaker": f"s{s}", "session": f"sess{s // 2}",
                         "emotion": ["neutral", "happy", "sad", "angry"][i % 4]})
    return pd.DataFrame(rows)


def test_loso_is_speaker_disjoint_with_a_dev_speaker():
    m = _manifest()
    folds = leave_one_group_out(m, "speaker")
    assert len(folds) == 6
    for f in folds:
        check_fold(f, m, "speaker")
        assert len(f.test) == 10 and len(f.dev) == 10 and len(f.train) == 40
    assert sorted(u for f in folds for u in f.test) == sorted(m["utterance_id"])


def test_loso_with_a_dev_fraction_keeps_the_test_speaker_out():
    m = _manifest()
    folds = leave_one_group_out(m, "speaker", dev=0.2)
    spk = dict(zip(m["utterance_id"], m["speaker"]))
    for f in folds:
        assert f.dev_from_train and f.to_dict()["dev_from_train"]
        check_fold(f, m, "speaker")  # train and dev share speakers by design
        assert len(f.dev) == 10 and len(f.train) == 40
        test_speakers = {spk[u] for u in f.test}
        assert len(test_speakers) == 1 and not test_speakers & {spk[u] for u in f.train + f.dev}
    bad = leave_one_group_out(m, "speaker", dev=0.2)[0]
    bad.dev_from_train = False
    with pytest.raises(ValueError, match="train/dev share speakers"):
        check_fold(bad, m, "speaker")
    bad.dev_from_train = True
    bad.dev = bad.dev + bad.test[:1]
    bad.test = bad.test[1:]
    with pytest.raises(ValueError, match="dev/test share speakers"):
        check_fold(bad, m, "speaker")


def test_trainer_accepts_a_loso_dev_fraction():
    from keras_ser.config import load_config
    from keras_ser.training.data import fold_list

    m = _manifest()
    m["corpus"] = "synthetic"
    cfg = load_config("mlee/synthetic", ["protocol.dev=0.2", "protocol.max_folds=null"])
    folds = fold_list(cfg, m)
    assert len(folds) == 6 and all(f.dev_from_train for f in folds)


@pytest.mark.parametrize("select, warns", [("best", True), ("last", False), ("average", False)])
def test_a_small_development_set_is_a_warning_only_where_it_chooses(select, warns, capsys):
    """Early stopping (`train.select=best`) on few development utterances is noisy; with `last`
    or `average` nothing is chosen on them, and a warning would mislead."""
    from keras_ser.config import load_config
    from keras_ser.training.data import fold_list

    m = _manifest()
    m["corpus"] = "synthetic"
    cfg = load_config("mlee/synthetic", ["protocol.dev=0.1", "protocol.max_folds=null", f"train.select={select}",
                                         *["train.average_epochs=2"] * (select == "average")])
    folds = fold_list(cfg, m)
    assert max(len(f.dev) for f in folds) < min(len(f.test) for f in folds)
    cfg.protocol.min_fold_utterances = min(len(f.test) for f in folds)  # every test part passes, no dev part
    capsys.readouterr()
    fold_list(cfg, m)
    assert ("development utterances: early stopping" in capsys.readouterr().out) == warns


def test_leave_one_session_out():
    m = _manifest()
    folds = make_folds(m, "loso_session")
    assert len(folds) == 3
    for f in folds:
        check_fold(f, m, "session")


def test_kfold_stratified_covers_everything_once():
    m = _manifest(4, 25)
    folds = kfold(m, k=5, seed=3)
    tests = [u for f in folds for u in f.test]
    assert sorted(tests) == sorted(m["utterance_id"])
    for f in folds:
        check_fold(f, m)
        assert len(f.dev) > 0


def test_kfold_by_speaker_is_speaker_independent():
    m = _manifest(10, 4)
    for f in kfold(m, k=5, group="speaker"):
        check_fold(f, m, "speaker")


def test_seeded_split_is_reproducible():
    m = _manifest()
    a, b = seeded_split(m, seed=1)[0], seeded_split(m, seed=1)[0]
    c = seeded_split(m, seed=2)[0]
    assert a.train == b.train and a.train != c.train
    assert (len(a.train), len(a.dev), len(a.test)) == (48, 6, 6)
    check_fold(seeded_split(m, seed=1, group="speaker")[0], m, "speaker")


def test_check_fold_catches_leaks():
    m = _manifest()
    f = leave_one_group_out(m, "speaker")[0]
    f.dev.append(f.test[0])
    with pytest.raises(ValueError, match="dev/test share"):
        check_fold(f, m)
    g = leave_one_group_out(m, "speaker")[0]
    moved = [u for u in g.train if u.startswith("s2_")][:1]
    g.test += ["s2_999"]
    m2 = pd.concat([m, pd.DataFrame([{"utterance_id": "s2_999", "speaker": "s2", "session": "x", "emotion": "sad"}])])
    with pytest.raises(ValueError, match="share speakers"):
        check_fold(g, m2, "speaker")
    assert moved


def test_pooled_metrics_equal_scores_of_the_concatenated_folds():
    from keras_ser.training import metrics as M

    rng = np.random.default_rng(0)
    folds = [(rng.integers(0, 3, 20), rng.integers(0, 3, 20)) for _ in range(4)]
    total = sum(M.confusion_matrix(t, p, 3) for t, p in folds)
    y_true, y_pred = np.concatenate([t for t, _ in folds]), np.concatenate([p for _, p in folds])
    pooled = M.pooled_metrics(total)
    assert pooled["wa"] == pytest.approx(M.weighted_accuracy(y_true, y_pred))
    assert pooled["ua"] == pytest.approx(M.unweighted_accuracy(y_true, y_pred)) and pooled["n"] == 80
