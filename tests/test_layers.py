"""Every registered layer and loss through the shared harness (tests/harness.py): each case gives
only its init arguments and inputs. The layers' arithmetic is tested by hand where it lives
(test_audio, test_fg_cme, test_epr, ...)."""

import keras
import numpy as np
import pytest

from keras_ser.layers import (
    AlignmentPooling,
    ApplyTimeMask,
    AudioFrontend,
    ChannelAugment,
    CrossModalityExcitation,
    DownsampleLengths,
    FlattenSegments,
    LengthMask,
    MaskedMax,
    MaskedMeanStd,
    MaskedNormalization,
    MaskedTimeAverage,
    ProfileStatistics,
    RandomForest,
    RepeatOverTime,
    Segmenter,
    ShrinkLengths,
    SpecAugment,
    StructuredSelfAttention,
    UnflattenSegments,
    UtteranceNormalization,
    WordAlignment,
)
from keras_ser.losses import MaskedMAE, RankingMAE, WeightedBinaryCrossentropy
from keras_ser.models.fg_cme import ModalityAttention
from tests.harness import check_exports, layer_case, run_case

RNG = np.random.default_rng(0)


def frames(*lengths, dim=6):
    """Examples `{"x": (n, dim), "n": n}` of the given lengths."""
    return [{"x": RNG.standard_normal((n, dim)).astype("float32"), "n": np.int32(n)} for n in lengths]


def real(ex):
    return int(ex["n"])


FRAME_WISE = dict(time={"x": "n"}, time_outputs={"out": [(1, real)]}, zero_past_length=("out",))
POOLED = dict(time={"x": "n"})


def _forest():
    from sklearn.ensemble import RandomForestClassifier

    X = RNG.standard_normal((60, 5))
    forest = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
    return RandomForest.from_sklearn(forest, 3), X[:2].astype("float32")


FOREST, FOREST_X = _forest()
WORDS = [  # starts, ends (seconds), word count, and frames of an utterance
    {"s": np.array([0.0, 0.1, 0.3], "float32"), "e": np.array([0.1, 0.3, 0.5], "float32"), "w": np.int32(3),
     "x": RNG.standard_normal((52, 4)).astype("float32"), "n": np.int32(52)},
    {"s": np.array([0.05, 0.2], "float32"), "e": np.array([0.2, 0.31], "float32"), "w": np.int32(2),
     "x": RNG.standard_normal((33, 4)).astype("float32"), "n": np.int32(33)},
]
WORD_TIME = dict(time={"s": "w", "e": "w", "x": "n"})


def by_words(ex):
    return int(ex["w"])


CASES = [
    # A bias makes the padding non-zero before the mask (zeros in, zeros out would prove nothing).
    layer_case("apply_time_mask", ApplyTimeMask, {}, frames(9, 4),
               lambda layer, i: layer(keras.layers.Dense(3, bias_initializer="ones")(i["x"]), i["n"]), **FRAME_WISE),
    layer_case("downsample_lengths", DownsampleLengths, {"stride": 3}, [{"n": np.int32(7)}, {"n": np.int32(9)}],
               lambda layer, i: layer(i["n"])),
    layer_case("shrink_lengths", ShrinkLengths, {"shrink": 3}, [{"n": np.int32(7)}, {"n": np.int32(2)}],
               lambda layer, i: layer(i["n"])),
    layer_case("length_mask", LengthMask, {}, frames(9, 4), lambda layer, i: layer(i["x"], i["n"]), **FRAME_WISE),
    layer_case("masked_time_average", MaskedTimeAverage, {}, frames(9, 4), lambda layer, i: layer(i["x"], i["n"]), **POOLED),
    layer_case("repeat_over_time", RepeatOverTime, {},
               [{**ex, "v": RNG.standard_normal(3).astype("float32")} for ex in frames(9, 4)],
               lambda layer, i: layer(i["v"], i["x"]), time={"x": "n"}, time_outputs={"out": [(1, real)]},
               check=lambda out, batch: np.testing.assert_allclose(
                   out["out"], np.repeat(batch["v"][:, None], batch["x"].shape[1], 1))),
    layer_case("masked_mean_std", MaskedMeanStd, {"epsilon": 1e-6}, frames(9, 4), lambda layer, i: layer(i["x"], i["n"]),
               check=lambda out, batch: np.testing.assert_allclose(
                   out["out"][1], np.concatenate([batch["x"][1, :4].mean(0), np.sqrt(batch["x"][1, :4].var(0) + 1e-6)]),
                   rtol=1e-5), **POOLED),
    layer_case("audio_frontend", AudioFrontend, {"frontend": "fg_cme"},
               [{"wav": RNG.standard_normal(4000).astype("float32") * 0.1, "ns": np.int32(4000)},
                {"wav": RNG.standard_normal(2500).astype("float32") * 0.1, "ns": np.int32(2500)}],
               lambda layer, i: layer(i["wav"], i["ns"]), time={"wav": "ns"},
               time_outputs={"out0": [(1, lambda ex: 1 + (int(ex["ns"]) - 400) // 160)]}, zero_past_length=("out0",),
               atol=1e-4),
    layer_case("masked_normalization", MaskedNormalization,
               {"mean": RNG.standard_normal(6).tolist(), "std": (1 + RNG.random(6)).tolist()},
               frames(9, 4), lambda layer, i: layer(i["x"], i["n"]), **FRAME_WISE),
    layer_case("utterance_normalization", UtteranceNormalization, {"mode": "meanvar"}, frames(9, 4),
               lambda layer, i: layer(i["x"], i["n"]), **FRAME_WISE),
    layer_case("spec_augment", SpecAugment, {"freq_mask_param": 2, "time_mask_param": 3, "seed": 1}, frames(9, 4),
               lambda layer, i: layer(i["x"], i["n"]), **FRAME_WISE),
    layer_case("channel_augment", ChannelAugment, {"gain": 0.5, "shape": 0.2, "order": 2, "seed": 1}, frames(9, 4),
               lambda layer, i: layer(i["x"], i["n"]), **FRAME_WISE),
    layer_case("structured_self_attention", StructuredSelfAttention, {"units": 5, "heads": 2}, frames(9, 4),
               lambda layer, i: layer(i["x"], mask=LengthMask()(i["x"], i["n"])), time={"x": "n"},
               time_outputs={"out1": [(2, real)]}, zero_past_length=("out1",)),
    layer_case("masked_max", MaskedMax, {}, frames(9, 4), lambda layer, i: layer(i["x"], i["n"]), **POOLED),
    layer_case("word_alignment", WordAlignment, {"centre_offset": 1, "widen": 1}, WORDS,
               lambda layer, i: layer(i["s"], i["e"], i["w"], i["n"], i["x"]), **WORD_TIME,
               time_outputs={"out": [(1, by_words), (2, real)]}, zero_past_length=("out",)),
    layer_case("alignment_pooling", AlignmentPooling, {}, WORDS,
               lambda layer, i: layer(i["x"], WordAlignment()(i["s"], i["e"], i["w"], i["n"], i["x"])), **WORD_TIME,
               time_outputs={"out": [(1, by_words)]}, zero_past_length=("out",)),
    layer_case("cross_modality_excitation", CrossModalityExcitation, {"residual": True},
               [{"za": RNG.standard_normal((3, 4)).astype("float32"), "zs": RNG.standard_normal((3, 5)).astype("float32")},
                {"za": RNG.standard_normal((2, 4)).astype("float32"), "zs": RNG.standard_normal((2, 5)).astype("float32")}],
               lambda layer, i: layer(i["za"], i["zs"]), time={"za": None, "zs": None},
               time_outputs={"out0": [(1, lambda ex: len(ex["za"]))], "out1": [(1, lambda ex: len(ex["zs"]))]}),
    layer_case("cross_modality_excitation_word_id", CrossModalityExcitation,
               {"acoustic_gate": "word_id", "vocab_size": 7, "excite_semantic": False},
               [{"za": RNG.standard_normal((3, 4)).astype("float32"), "zs": RNG.standard_normal((3, 5)).astype("float32"),
                 "ids": np.array([2, 5, 1], "int32")},
                {"za": RNG.standard_normal((2, 4)).astype("float32"), "zs": RNG.standard_normal((2, 5)).astype("float32"),
                 "ids": np.array([6, 3], "int32")}],
               lambda layer, i: layer(i["za"], i["zs"], i["ids"]), time={"za": None, "zs": None, "ids": None},
               time_outputs={"out0": [(1, lambda ex: len(ex["za"]))], "out1": [(1, lambda ex: len(ex["zs"]))]}),
    layer_case("segmenter", Segmenter, {"length": 4, "hop": 2, "pad_value": -3.0}, frames(11, 3),
               lambda layer, i: layer(i["x"], i["n"]), time={"x": "n"},
               time_outputs={"out0": [(1, lambda ex: max(1, 1 + (real(ex) - 4) // 2))]}),
    layer_case("unflatten_segments", UnflattenSegments, {}, frames(11, 6),
               lambda layer, i: layer(FlattenSegments()(Segmenter(4, 2)(i["x"], i["n"])[0]), Segmenter(4, 2)(i["x"], i["n"])[0]),
               time={"x": "n"}, time_outputs={"out": [(1, lambda ex: max(1, 1 + (real(ex) - 4) // 2))]}),
    layer_case("profile_statistics", ProfileStatistics, {"percentiles": [25.0, 50.0]},
               [{"p": RNG.dirichlet(np.ones(3), 7).astype("float32"), "c": np.int32(7)},
                {"p": RNG.dirichlet(np.ones(3), 3).astype("float32"), "c": np.int32(3)}],
               lambda layer, i: layer(i["p"], i["c"]), time={"p": "c"}),
    layer_case("random_forest", type(FOREST), FOREST.get_config(), [{"f": FOREST_X[0]}, {"f": FOREST_X[1]}],
               lambda layer, i: FOREST(i["f"])),
    layer_case("modality_attention", ModalityAttention, {"units": 3},
               [{"m": RNG.standard_normal((2, 4)).astype("float32")}, {"m": RNG.standard_normal((2, 4)).astype("float32")}],
               lambda layer, i: layer(i["m"])),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_layer(case, tmp_path):
    run_case(case, tmp_path)


def test_every_registered_layer_has_a_case():
    """A layer registered with Keras but missing here fails this test."""
    import keras_ser.layers  # noqa: F401
    import keras_ser.models  # noqa: F401

    registered = {name.split(">", 1)[1] for name in keras.saving.get_custom_objects() if name.startswith("keras_ser>")}
    covered = {c.layer[0].__name__ for c in CASES} | {"FlattenSegments"}  # inside the unflatten case
    losses = {"MaskedMAE", "RankingMAE", "WeightedBinaryCrossentropy"}
    assert registered - losses <= covered, sorted(registered - losses - covered)


def test_exports_reload_without_keras_ser(tmp_path):
    check_exports(CASES, tmp_path)


@pytest.mark.parametrize("loss, args", [
    (WeightedBinaryCrossentropy([2.0, 1.0, 0.5], [0.5, 1.0, 3.0]),
     (np.array([[1, 0, 1]], "float32"), np.array([[0.7, 0.2, 0.4]], "float32"))),
    (MaskedMAE(), (np.array([[0.5, 0.2, -1.0]], "float32"), np.array([[0.4, 0.6, 9.0]], "float32"))),
    (RankingMAE(0.5, 0.1, 0.01), (np.array([0.5, 0.2, 0.3], "float32"), np.array([0.4, 0.6, 0.3], "float32"))),
])
def test_loss_config_round_trip(loss, args):
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert float(again(*args)) == pytest.approx(float(loss(*args)))
