import json
import os

import numpy as np
import pytest
import soundfile as sf

from keras_ser.corpora import MANIFEST_COLUMNS, emodb, load_corpus, read_manifest, save_manifest
from keras_ser.errors import CorpusError
from tests.conftest import shared_corpus


def _wav(path, seconds=0.3):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    noise = np.random.default_rng(len(path)).standard_normal(int(16000 * seconds)) * 0.01
    sf.write(path, noise.astype(np.float32), 16000)


def _check_schema(m):
    assert list(m.columns[: len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    assert m["utterance_id"].is_unique
    assert all(os.path.isabs(p) for p in m["path"])


# --- fixture trees with each corpus's exact naming ------------------------------------------
def _emodb_tree(tmp_path):
    for name in ["03a01Fa", "08b10Tc", "16a05Wb"]:
        _wav(str(tmp_path / "wav" / f"{name}.wav"))
    _wav(str(tmp_path / "wav" / "03a01Xa.wav"))  # unknown emotion code
    (tmp_path / "wav" / "notes.txt").write_text("x")
    os.makedirs(tmp_path / "silb")
    (tmp_path / "silb" / "03a01Fa.silb").write_text(
        "0.05\tder\n0.2\tlap\n0.3\tpen\n0.5\tliegt\n0.7\tauf\n0.8\tdem\n0.9\teis\n1.1\tschrank\n1.4\t.\n",
        encoding="latin-1")


def test_emodb_fixture(tmp_path):
    _emodb_tree(tmp_path)
    m, skipped = load_corpus("emodb", str(tmp_path))
    _check_schema(m)
    assert m["emotion"].tolist() == ["happy", "sad", "angry"]
    assert m["gender"].tolist() == ["m", "f", "f"]
    assert m["speaker"].tolist() == ["emodb_03", "emodb_08", "emodb_16"]
    assert m["text"].iloc[1].startswith("Die wird auf dem Platz")
    assert m["words"].iloc[0][0] == ("der", 0.05, 0.2) and m["words"].iloc[0][-1] == ("eisschrank", 0.9, 1.4)
    assert len(skipped) == 2 and set(skipped["reason"].str[:10]) == {"not a .wav", "name does "}


def test_training_names_the_files_a_loader_did_not_use(tmp_path, capsys):
    from keras_ser.config import load_config
    from keras_ser.training.data import load_one

    _emodb_tree(tmp_path)
    (tmp_path / "wav" / "more_notes.txt").write_text("x")
    (tmp_path / "silb" / "08b10Tc.silb").write_text("0.1\tdie\n0.3\t.\n", encoding="latin-1")  # too few
    m = load_one(load_config("epr/emodb_small"), "emodb", str(tmp_path))
    assert len(m) == 3
    out = capsys.readouterr().out
    assert "emodb: 4 files not used:" in out and "records folder" not in out
    assert f"2 x not a .wav file: {tmp_path / 'wav'}" in out  # one line per reason, with a path
    assert "1 x word timings not derived" in out and str(tmp_path / "silb" / "08b10Tc.silb") in out


def test_emodb_syllable_grouping_handles_stutters_and_breaths():
    syl = [(0.0, "sie"), (0.1, "ha"), (0.2, "ben"), (0.3, "es"), (0.4, "ge"), (0.5, "gera"),
           (0.6, "de"), (0.7, "("), (0.8, "hoch"), (1.0, "ge"), (1.1, "tra"), (1.2, "gen"),
           (1.3, "und"), (1.4, "jetzt"), (1.5, "gehen"), (1.6, "hn"), (1.7, "sie"), (1.8, "wie"),
           (1.9, "der"), (2.0, "run"), (2.1, "ter"), (2.3, ".")]
    words = emodb.syllables_to_words(syl, emodb.sentence_words(emodb.SENTENCES["b02"]))
    assert [w for w, _, _ in words] == emodb.sentence_words(emodb.SENTENCES["b02"])
    assert words[3] == ("gerade", 0.4, 0.7)  # ends where the breath starts
    assert words[7] == ("gehen", 1.5, 1.7)  # syllabic nasal joins its word
    with pytest.raises(ValueError):
        emodb.syllables_to_words([(0.0, "hallo"), (0.5, ".")], ["das", "will", "sie"])


def test_ravdess_fixture(tmp_path):
    names = ["03-01-05-02-01-01-01.flac", "03-01-01-01-02-02-02.wav", "03-02-05-01-01-01-03.wav",
             "01-01-05-01-01-01-04.wav", "03-01-01-02-01-01-05.wav", "garbage.wav"]
    for n in names:
        _wav(str(tmp_path / "Actor_01" / n))
    m, skipped = load_corpus("ravdess", str(tmp_path))
    _check_schema(m)
    assert m["emotion"].tolist() == ["neutral", "angry"]
    assert m["intensity"].tolist() == ["normal", "strong"]
    assert m["gender"].tolist() == ["f", "m"]
    assert m["text"].tolist() == ["Dogs are sitting by the door", "Kids are talking by the door"]
    reasons = " ".join(skipped["reason"])
    assert len(skipped) == 4 and "song" not in reasons and "vocal channel 02" in reasons
    assert "modality 01" in reasons and "no strong intensity" in reasons


def test_loaders_read_durations_and_skip_unreadable_audio(tmp_path):
    _wav(str(tmp_path / "Actor_01" / "03-01-05-02-01-01-01.wav"), seconds=1.25)
    _wav(str(tmp_path / "Actor_01" / "03-01-01-01-02-02-01.wav"), seconds=0.5)
    broken = tmp_path / "Actor_01" / "03-01-05-02-02-01-01.wav"
    broken.write_bytes(b"RIFF\x00\x00not audio at all")
    m, skipped = load_corpus("ravdess", str(tmp_path))
    assert m["duration"].tolist() == [0.5, 1.25]
    row = skipped[skipped["path"] == str(broken)]
    assert len(row) == 1 and row["reason"].iloc[0].startswith("unreadable audio header")


def test_read_manifest_fills_durations_and_names_unreadable_files(tmp_path):
    _wav(str(tmp_path / "a.wav"), seconds=0.75)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    row = dict(dict.fromkeys(MANIFEST_COLUMNS), utterance_id="u1", path="a.wav", corpus="mine", speaker="s1",
               emotion="happy")
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    m = read_manifest(tmp_path / "m.jsonl")
    assert m["duration"].tolist() == [0.75] and m["path"].iloc[0] == str(tmp_path / "a.wav")
    bad = dict(row, utterance_id="u2", path="bad.wav")
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"m.jsonl:2: .*bad.wav: unreadable audio header"):
        read_manifest(tmp_path / "m.jsonl")
    gone = dict(row, utterance_id="u3", path="gone.wav")  # said as it is, not as libsndfile's "System error"
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(gone) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"m.jsonl:2: .*gone.wav: file does not exist"):
        read_manifest(tmp_path / "m.jsonl")


def test_read_manifest_fills_optional_columns_of_a_hand_written_manifest(tmp_path):
    _wav(str(tmp_path / "a.wav"), seconds=0.5)
    _wav(str(tmp_path / "b.wav"), seconds=0.25)
    lines = [{"path": "a.wav", "speaker": "alice", "emotion": "happy"},
             {"path": "b.wav", "speaker": "bob", "emotion": "sad", "text": "hello"}]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    m = read_manifest(tmp_path / "mine.jsonl")
    assert list(m.columns[:len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    assert m["utterance_id"].tolist() == ["a", "b"] and m["corpus"].tolist() == ["mine", "mine"]
    assert m["session"].tolist() == ["alice", "bob"] and m["duration"].tolist() == [0.5, 0.25]
    assert m["text"].tolist() == [None, "hello"] and m["words"].tolist() == [None, None]
    assert np.isnan(m["strength"]).all()
    assert load_corpus("manifest", str(tmp_path / "mine.jsonl")).manifest.equals(m)
    (tmp_path / "mine.jsonl").write_text(json.dumps(lines[0]) + "\n" + json.dumps({"path": "b.wav"}) + "\n")
    with pytest.raises(CorpusError, match=r"mine.jsonl:2: no speaker"):
        read_manifest(tmp_path / "mine.jsonl")
    (tmp_path / "mine.jsonl").write_text("[1, 2]\n")
    with pytest.raises(CorpusError, match=r"mine.jsonl:1: expected a JSON object"):
        read_manifest(tmp_path / "mine.jsonl")
    (tmp_path / "mine.jsonl").write_text(json.dumps(lines[0]) + "\n" + json.dumps(dict(lines[0], emotion="joy")) + "\n")
    with pytest.raises(CorpusError, match=r"mine.jsonl.*duplicate utterance_id 'a'"):
        read_manifest(tmp_path / "mine.jsonl")
    with pytest.raises(CorpusError, match="no such manifest file"):
        load_corpus("manifest", str(tmp_path / "absent.jsonl"))


def test_savee_fixture(tmp_path):
    for p in ["AudioData/DC/a01.wav", "AudioData/JE/sa03.wav", "AudioData/KL/su15.wav",
              "AudioData/JK/n30.wav", "AudioData/XX/a01.wav", "AudioData/DC/zz01.wav"]:
        _wav(str(tmp_path / p))
    m, skipped = load_corpus("savee", str(tmp_path))
    _check_schema(m)
    assert sorted(zip(m["speaker"], m["emotion"])) == [
        ("savee_DC", "angry"), ("savee_JE", "sad"), ("savee_JK", "neutral"), ("savee_KL", "surprise")]
    assert len(skipped) == 2


def test_esd_fixture(tmp_path):
    _wav(str(tmp_path / "0011/Angry/train/0011_000351.wav"))
    _wav(str(tmp_path / "0011/Neutral/0011_000001.wav"))
    _wav(str(tmp_path / "0003/Sad/0003_001051.wav"))
    _wav(str(tmp_path / "0011/Bored/0011_000999.wav"))
    (tmp_path / "0011" / "0011.txt").write_text(
        "0011_000001\tThe nine the eggs.\tNeutral\n0011_000351\tI know.\tAngry\n", encoding="utf-16")
    m, skipped = load_corpus("esd", str(tmp_path))
    _check_schema(m)
    assert m["utterance_id"].tolist() == ["esd_0003_001051", "esd_0011_000001", "esd_0011_000351"]
    assert m["language"].tolist() == ["zh", "en", "en"]
    assert m["text"].tolist()[1:] == ["The nine the eggs.", "I know."]
    assert m["split"].tolist()[2] == "train" and len(skipped) == 1
    assert len(load_corpus("esd", str(tmp_path), languages=("en",)).manifest) == 2


def test_casia_fixture(tmp_path):
    _wav(str(tmp_path / "liuchanhg/angry/201.wav"))
    _wav(str(tmp_path / "ZhaoZuoxiang/surprise/250.wav"))
    _wav(str(tmp_path / "nobody/sad/201.wav"))
    m, skipped = load_corpus("casia", str(tmp_path))
    _check_schema(m)
    assert m["gender"].tolist() == ["f", "m"] and m["emotion"].tolist() == ["angry", "surprise"]
    assert len(skipped) == 1


def test_tess_fixture(tmp_path):
    _wav(str(tmp_path / "OAF_angry/OAF_back_angry.wav"))
    _wav(str(tmp_path / "YAF_pleasant_surprised/YAF_bite_ps.wav"))
    _wav(str(tmp_path / "YAF_x/YAF_bite_bored.wav"))
    m, skipped = load_corpus("tess", str(tmp_path))
    _check_schema(m)
    assert m["emotion"].tolist() == ["angry", "surprise"]
    assert m["text"].tolist() == ["Say the word back", "Say the word bite"]
    assert len(skipped) == 1


def test_cremad_fixture(tmp_path):
    _wav(str(tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav"))
    _wav(str(tmp_path / "AudioWAV/1002_IEO_HAP_HI.wav"))
    _wav(str(tmp_path / "AudioWAV/1002_IEO_HAP_HI.mp3"))
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,x,y\n1002,21,Female,x,y\n")
    m, skipped = load_corpus("cremad", str(tmp_path))
    _check_schema(m)
    assert m["gender"].tolist() == ["m", "f"] and m["intensity"].tolist() == [None, "high"]
    assert m["text"].iloc[0] == "Don't forget a jacket"
    assert len(skipped) == 1 and "mp3" in skipped["reason"].iloc[0]


IEMO_EVAL = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
C-E3:\tNeutral; Frustration;\t()
C-E4:\tAnger;\t()
C-F1:\tHappiness;\t()
A-E3:\tval 3; act 2; dom  2;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M001\txxx\t[2.5000, 3.5000, 3.0000]
C-E1:\tOther:tired;\t()
C-E2:\tSadness;\t()
C-E3:\tExcited;\t()
"""
IEMO_TRANS = "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\nM: [BREATHING]\n" \
             "Ses01F_impro01_M001 [010.0100-011.3925]: Do you have your forms?\n"
IEMO_WDSEG = """ SFrm  EFrm    SegAScr Word
    0    21    -115613 <s>
   22    37     -57432 EXCUSE
   38    51     -54493 ME(2)
   52    60     -10000 <sil>
   61    90    -178380 </s>
 Total Score: -405918
"""


def test_iemocap_fixture(tmp_path):
    s = tmp_path / "Session1"
    for utt in ["Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses01F_impro01_F009"]:
        _wav(str(s / "sentences/wav/Ses01F_impro01" / f"{utt}.wav"))
    os.makedirs(s / "dialog/EmoEvaluation")
    os.makedirs(s / "dialog/transcriptions")
    os.makedirs(s / "sentences/ForcedAlignment/Ses01F_impro01")
    (s / "dialog/EmoEvaluation/Ses01F_impro01.txt").write_text(IEMO_EVAL)
    (s / "dialog/transcriptions/Ses01F_impro01.txt").write_text(IEMO_TRANS)
    (s / "sentences/ForcedAlignment/Ses01F_impro01/Ses01F_impro01_F000.wdseg").write_text(IEMO_WDSEG)
    m, skipped = load_corpus("iemocap", str(tmp_path))
    _check_schema(m)
    f, mm = m.iloc[0], m.iloc[1]
    assert f["emotion"] == "neutral" and mm["emotion"] is None
    assert f["annotations"] == [["neutral"], ["neutral", "frustrated"], ["angry"]]  # no self-assessment
    assert mm["annotations"] == [["other"], ["sad"], ["excited"]]
    assert f["text"] == "Excuse me." and f["words"] == [("excuse", 0.22, 0.38), ("me", 0.38, 0.52)]
    assert f["speaker"] == "iemocap_Ses01F" and mm["speaker"] == "iemocap_Ses01M" and mm["gender"] == "m"
    assert bool(f["improvised"]) and f["session"] == "iemocap_Ses01"
    assert len(skipped) == 1 and "EmoEvaluation" in skipped["reason"].iloc[0]
    with_self = load_corpus("iemocap", str(tmp_path), include_self_assessment=True).manifest
    assert len(with_self["annotations"].iloc[0]) == 4


def test_manifest_round_trip(tmp_path, tiny_corpus):
    m = tiny_corpus.manifest
    save_manifest(m, tmp_path / "m.jsonl")
    back = read_manifest(tmp_path / "m.jsonl")
    assert back["words"].iloc[3] == m["words"].iloc[3]
    assert back["annotations"].tolist() == m["annotations"].tolist()
    np.testing.assert_allclose(back["strength"], m["strength"])


# --- the real corpora in ../shared/data ------------------------------------------------------
@pytest.mark.data
def test_emodb_real_counts():
    m, skipped = load_corpus("emodb", shared_corpus("emodb"))
    assert len(m) == 535
    assert m["emotion"].value_counts().to_dict() == {
        "angry": 127, "boredom": 81, "neutral": 79, "happy": 71, "fear": 69, "sad": 62, "disgust": 46}
    assert m["speaker"].nunique() == 10
    males = {f"emodb_{s}" for s in ("03", "10", "11", "12", "15")}
    assert set(m[m["gender"] == "m"]["speaker"]) == males
    # One .silb file of the distribution is empty: reported, not dropped.
    assert skipped["path"].str.endswith("13a01Wb.silb").tolist() == [True]
    assert m["words"].notna().sum() == 534


@pytest.mark.data
def test_emodb_word_timings_cover_the_speech():
    """Syllable marks are onsets: speech energy lies inside [first word start, last word end]."""
    m, _ = load_corpus("emodb", shared_corpus("emodb"))
    ratios = []
    for _, row in m.dropna(subset=["words"]).iloc[::25].iterrows():
        y, sr = sf.read(row["path"])
        frames = np.lib.stride_tricks.sliding_window_view(y, 320)[::160]
        energy = (frames ** 2).mean(1)
        t = (np.arange(len(energy)) * 160 + 160) / sr
        inside = (t >= row["words"][0][1]) & (t <= row["words"][-1][2])
        ratios.append(energy[inside].sum() / energy.sum())
    assert np.median(ratios) > 0.97


@pytest.mark.data
def test_ravdess_real_counts():
    m, skipped = load_corpus("ravdess", shared_corpus("ravdess"))
    assert len(m) == 1440 and len(skipped) == 0
    counts = m["emotion"].value_counts().to_dict()
    assert counts.pop("neutral") == 96 and set(counts.values()) == {192}
    assert m.groupby("speaker").size().eq(60).all() and m["speaker"].nunique() == 24
    assert (m["gender"] == "m").sum() == 720
    assert m["intensity"].value_counts().to_dict() == {"normal": 768, "strong": 672}
