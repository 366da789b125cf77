import hashlib
import os

import numpy as np
import pytest
import scipy.stats
import soundfile as sf

from keras_ser.corpora import synthetic
from keras_ser.corpora.alignments import read_textgrid


def test_tiny_corpus_layout(tiny_corpus):
    m = tiny_corpus.manifest
    assert len(m) == 4 * 5 * 4
    assert set(m["emotion"]) == set(synthetic.BASE_EMOTIONS)
    assert sorted(m["gender"].unique()) == ["f", "m"]
    assert (m.loc[m["emotion"] == "neutral", "strength"] == 0).all()
    emo = m[m["emotion"] != "neutral"]
    assert emo["strength"].between(0.1, 1.0).all() and emo["strength"].std() > 0.15


def test_generation_is_deterministic_and_idempotent(tmp_path):
    a = synthetic.generate(str(tmp_path / "a"), size="tiny", seed=7, n_speakers=2, per_speaker_emotion=1)
    b = synthetic.generate(str(tmp_path / "b"), size="tiny", seed=7, n_speakers=2, per_speaker_emotion=1)
    c = synthetic.generate(str(tmp_path / "c"), size="tiny", seed=8, n_speakers=2, per_speaker_emotion=1)

    def digest(r):
        return [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in r.manifest["path"]]

    assert digest(a) == digest(b) and digest(a) != digest(c)
    mtime = os.path.getmtime(a.manifest["path"].iloc[0])
    synthetic.generate(str(tmp_path / "a"), size="tiny", seed=7, n_speakers=2, per_speaker_emotion=1)
    assert os.path.getmtime(a.manifest["path"].iloc[0]) == mtime


def test_word_alignments_are_exact_and_written_as_textgrids(tiny_corpus):
    m = tiny_corpus.manifest
    root = os.path.dirname(os.path.dirname(m["path"].iloc[0]))
    for _, row in m.iloc[::9].iterrows():
        tg = read_textgrid(os.path.join(root, row["textgrid"]))
        assert [w for w, _, _ in tg] == row["text"].split()
        np.testing.assert_allclose([s for _, s, _ in tg], [s for _, s, _ in row["words"]])
        y, sr = sf.read(row["path"])
        # Speech energy lies inside the words; the gaps before/after are near-silent.
        s, e = int(row["words"][0][1] * sr), int(row["words"][-1][2] * sr)
        assert np.mean(y[s:e] ** 2) > 100 * np.mean(y[: max(s - 400, 1)] ** 2)


def test_annotators_make_hard_soft_and_existence_targets_differ(tiny_corpus):
    m = tiny_corpus.manifest
    ann = m["annotations"].tolist()
    assert all(len(a) == 3 for a in ann)
    disagree = [len({lab for labs in a for lab in labs}) > 1 for a in ann]
    assert 0.2 < np.mean(disagree) < 0.9
    # Annotators agree with the acted emotion more often when it is stronger.
    emo = m[m["emotion"] != "neutral"]
    agree = [np.mean([row["emotion"] in labs for labs in row["annotations"]]) for _, row in emo.iterrows()]
    assert scipy.stats.spearmanr(emo["strength"], agree)[0] > 0.2
    assert any(len(labs) > 1 for a in ann for labs in a)  # some annotators give two labels


def test_emotion_changes_inside_some_utterances(tmp_path):
    r = synthetic.generate(str(tmp_path / "chg"), size="tiny", seed=1, p_change=0.6)
    segs = r.manifest["emotion_segments"]
    changed = [s for s in segs if len(s) == 2]
    assert changed and all(s[0][2] == "neutral" and s[0][1] == s[1][0] for s in changed)


def _utterance_features(paths):
    import librosa

    feats, energy = [], []
    for p in paths:
        y, sr = sf.read(p)
        S = np.log(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=40) + 1e-6)
        rms = librosa.feature.rms(y=y)[0]
        active = rms > rms.max() * 0.05
        feats.append(np.r_[S.mean(1), S.std(1)])
        energy.append(20 * np.log10(rms[active].mean()))
    return np.array(feats), np.array(energy)


def test_corpus_is_learnable_and_strength_drives_prosody(tiny_corpus):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    m = tiny_corpus.manifest
    X, energy = _utterance_features(m["path"])
    y = m["emotion"].to_numpy(str)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    acc = cross_val_score(clf, X, y, groups=m["speaker"].to_numpy(str), cv=GroupKFold(4)).mean()
    assert acc > 0.35, f"speaker-independent accuracy {acc:.2f} is not well above chance (0.20)"
    strength = m["strength"].to_numpy()
    for emotion, sign in (("angry", 1), ("happy", 1), ("sad", -1)):
        sel = (m["emotion"] == emotion).to_numpy()
        rho = scipy.stats.spearmanr(strength[sel], energy[sel])[0]
        assert sign * rho > 0.5, f"{emotion}: energy vs strength rho {rho:.2f}"


@pytest.mark.slow
def test_default_size_generates(tmp_path):
    r = synthetic.generate(str(tmp_path / "default"), size="default", seed=0)
    assert len(r.manifest) == 8 * 5 * 10


def test_sizes_offered_by_the_cli_and_config_are_the_generators():
    import inspect

    from keras_ser.cli import synth
    from keras_ser.config import SYNTHETIC_SIZES

    assert f"[--size {'|'.join(synthetic.SIZES)}]" in inspect.getsource(synth)
    assert SYNTHETIC_SIZES == tuple(synthetic.SIZES)
    assert synthetic.SIZES["large"]["n_speakers"] == 24


def test_cli_overrides_the_number_of_speakers_and_utterances(tmp_path, capsys):
    from keras_ser.cli import synth
    from keras_ser.corpora.manifest import read_manifest

    assert synth.main([str(tmp_path / "c"), "--size", "tiny", "--speakers", "2", "--per-speaker-emotion", "1"]) == 0
    man = read_manifest(str(tmp_path / "c" / "manifest.jsonl"))
    assert man["speaker"].nunique() == 2 and len(man) == 2 * len(synthetic.BASE_EMOTIONS)
    assert man["strength"].notna().all() and "emotion_segments" in man
    with pytest.raises(SystemExit):
        synth.main([str(tmp_path / "d"), "--speakers", "0"])
    assert "must be a positive integer" in capsys.readouterr().err
