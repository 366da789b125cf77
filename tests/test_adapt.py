"""`data.eval_adapt=batchnorm`: batch-normalisation statistics re-estimated on an unseen corpus."""

import keras
import numpy as np
import pytest

from keras_ser.config import ConfigError, load_config, validate
from keras_ser.models.fg_cme import build_baseline
from keras_ser.models.mlee import build_mlee_classifier
from keras_ser.training.adapt import adapted_batchnorm, batchnorm_layers, unpadded


def _utterances(lengths, dim, shift, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, dim)) * 2 + shift).astype("float32") for n in lengths]


def _batch(utts, dim):
    x = np.zeros((len(utts), max(len(u) for u in utts), dim), "float32")
    for i, u in enumerate(utts):
        x[i, :len(u)] = u
    return {"features": x, "num_frames": np.array([len(u) for u in utts], "int32")}


def test_statistics_are_the_unseen_corpus_own_layer_by_layer_and_restored_after():
    dim = 6
    model = build_baseline("cnn_pool", num_classes=3, feature_dim=dim, conv_filters=(4, 5), conv_kernels=(3, 3),
                           hidden_units=4, spatial_dropout=0.0, pool_dropout=0.0)
    layers = [layer for _, layer in batchnorm_layers(model)]
    assert [layer.name for layer in layers] == ["bn1", "bn2"]
    before = [layer.moving_mean.numpy().copy() for layer in layers]
    utts = _utterances([7, 12, 3, 9], dim, shift=3.0)
    # Two padded batches give the same examples as the utterances themselves.
    examples = list(unpadded([_batch(utts[:2], dim), _batch(utts[2:], dim)], ["features", "num_frames"]))
    assert [e["features"].shape[1] for e in examples] == [7, 12, 3, 9]
    x = _batch(utts, dim)
    plain = np.asarray(model(x)["emotion"])
    with adapted_batchnorm(model, examples):
        for layer in layers:  # each layer's statistics: its inputs over every real frame, given the layers before
            feeder = keras.Model(model.input, layer.input)
            h = np.concatenate([np.asarray(feeder(e))[0] for e in examples])
            np.testing.assert_allclose(layer.moving_mean.numpy(), h.mean(0), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(layer.moving_variance.numpy(), h.var(0), rtol=1e-3, atol=1e-4)
        adapted = np.asarray(model(x)["emotion"])
    assert not np.allclose(adapted, plain, atol=1e-4)
    for layer, mean in zip(layers, before):
        np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)
    np.testing.assert_allclose(np.asarray(model(x)["emotion"]), plain, atol=1e-6)


def test_nested_encoder_is_adapted_and_a_model_without_batch_norm_is_refused():
    tiny = dict(conv_blocks=((4, (3, 3), (2, 2)), (4, (3, 3), (1, 1))), lstm_units=4, attention_units=4, hidden_units=4)
    model = build_mlee_classifier(4, 16, **tiny)
    layers = [layer for _, layer in batchnorm_layers(model)]
    assert len(layers) == 2
    batches = [_batch(_utterances([10, 14], 16, shift=-2.0), 16)]
    with adapted_batchnorm(model, lambda: unpadded(batches, ["features", "num_frames"])):  # streamed, a pass per layer
        assert not np.allclose(layers[0].moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(layers[0].moving_mean.numpy(), 0.0)
    plain = build_baseline("blstm_attention_audio", num_classes=3, feature_dim=16, lstm_units=4, attention_units=4,
                           hidden_units=4)
    with pytest.raises(ValueError, match="has no batch normalisation"):
        with adapted_batchnorm(plain, []):
            pass
    with pytest.raises(ValueError, match="no utterance of the unseen corpus"):
        with adapted_batchnorm(model, lambda: iter([])):
            pass
    np.testing.assert_array_equal(layers[0].moving_mean.numpy(), 0.0)  # restored after the error too


def test_config_names_what_can_be_adapted():
    unseen = "data.eval_corpora=[{corpus: synthetic}]"
    validate(load_config("fg_cme/ravdess_recipe", ["data.eval_adapt=batchnorm", unseen]))
    validate(load_config("mlee/ravdess_recipe", ["data.eval_adapt=batchnorm", unseen]))
    with pytest.raises(ConfigError, match="no unseen corpus to adapt to"):
        validate(load_config("mlee/ravdess_recipe", ["data.eval_adapt=batchnorm"]))
    with pytest.raises(ConfigError, match="for MLEE and FG_CME's cnn_pool .* not fg_cme fg_cme"):
        validate(load_config("fg_cme/ravdess", ["data.eval_adapt=batchnorm", unseen]))
    with pytest.raises(ConfigError, match="data.eval_adapt"):
        validate(load_config("mlee/ravdess_recipe", ["data.eval_adapt=adabn", unseen]))
