"""EPR: a VGG segment classifier and the utterance model around it (Mao, Ching, Lee, 2020).

The segment classifier (`build_vgg`) takes one 32-frame log-mel segment `(32, 64)` and returns
K posteriors: VGG's convolution stacks (Simonyan & Zisserman, Table 1), 3x3 convolutions, ReLU,
2x2 max pooling after each of the five stacks, then VGG's fully connected classifier. The paper
names configuration E (VGG-19's sixteen convolutions) and nothing else about the network, so
what VGG itself specifies is the default: FC-4096, FC-4096, dropout 0.5, K-way softmax.

    A: 1, 1, 2, 2, 2 convolutions per stack     D: 2, 2, 3, 3, 3 (VGG-16)
    B: 2, 2, 2, 2, 2                            E: 2, 2, 4, 4, 4 (VGG-19)
    filters 64, 128, 256, 512, 512, times `width`

Not in the paper, and options: `width` scales the filters (CPU runs use small VGGs and say so);
`batch_norm` (default True) adds batch normalisation after each convolution, without which a
16-convolution VGG does not train from scratch with Adam at 1e-3 (the 2014 VGG-19 was
initialised from shallower nets); `batch_norm=False` is the plain 2014 stack.

`build_epr_model` wraps a trained segment classifier and a fitted random forest into one model
from an utterance's features to the forest's utterance probabilities: segmentation,
the classifier on every segment, `ProfileStatistics`, `RandomForest`. Its heads: `emotion`
(the forest's probabilities) and `segment_mean` (the mean segment posterior, the network's own
utterance decision).
"""

import keras

from keras_ser.layers import MaskedNormalization, MaskedTimeAverage
from keras_ser.layers.forest import RandomForest
from keras_ser.layers.segments import (
    FlattenSegments,
    ProfileStatistics,
    Segmenter,
    UnflattenSegments,
)

VGG_CONFIGS = {"A": (1, 1, 2, 2, 2), "B": (2, 2, 2, 2, 2), "D": (2, 2, 3, 3, 3), "E": (2, 2, 4, 4, 4)}
VGG_FILTERS = (64, 128, 256, 512, 512)


def build_vgg(num_classes, segment_frames=32, feature_dim=64, mean=None, std=None, config="E", width=1.0,
              dense_units=(4096, 4096), dropout=0.5, batch_norm=True, name="vgg"):
    """The VGG segment classifier: `{"segments": (batch, frames, dim)}` → `{"emotion": (batch, K)}`.

    Args:
        num_classes: int. K.
        segment_frames, feature_dim: segment shape (32 x 64 in the paper).
        mean, std: training-set feature statistics `(feature_dim,)` (z-normalisation in the model).
        config: "A", "B", "D" or "E" (paper: E).
        width: float. Multiplies VGG's filter counts (1.0 = VGG).
        dense_units: hidden fully connected layers (VGG: 4096, 4096).
        dropout: float. After each hidden dense layer (VGG: 0.5).
        batch_norm: bool. Batch normalisation after each convolution (not in the paper; see the
            module docstring).
    """
    if config not in VGG_CONFIGS:
        raise ValueError(f"build_vgg: config must be one of {', '.join(VGG_CONFIGS)}, got {config!r}")
    segments = keras.Input((segment_frames, feature_dim), name="segments")
    x = MaskedNormalization(mean=mean, std=std, dim=feature_dim, name="normalization")(segments)
    x = keras.layers.Reshape((segment_frames, feature_dim, 1), name="add_channel")(x)
    for s, (n, f) in enumerate(zip(VGG_CONFIGS[config], VGG_FILTERS), 1):
        filters = max(1, int(round(f * width)))
        for c in range(1, n + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                                    kernel_initializer="he_normal", name=f"conv{s}_{c}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{s}_{c}")(x)
            x = keras.layers.ReLU(name=f"relu{s}_{c}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{s}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense_units, 1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(x)
    return keras.Model({"segments": segments}, {"emotion": out}, name=name)


def build_epr_model(segment_model, forest, feature_dim=64, segment_frames=32, segment_hop=1, pad_value=0.0,
                    percentiles=(10.0, 25.0, 50.0, 75.0, 90.0), name="epr"):
    """The utterance model: `{features, num_frames}` → `{"emotion", "segment_mean"}`.

    Args:
        segment_model: a `build_vgg` model (trained).
        forest: a fitted scikit-learn `RandomForestClassifier` on `profile_statistics`, or a
            `RandomForest` layer.
        pad_value: the feature value of the frames that pad an utterance shorter than one
            segment (the frontend's log floor, i.e. silence).
    """
    features = keras.Input((None, feature_dim), name="features")
    num_frames = keras.Input((), dtype="int32", name="num_frames")
    segments, counts = Segmenter(segment_frames, segment_hop, pad_value, name="segmenter")(features, num_frames)
    flat = FlattenSegments(name="flatten_segments")(segments)
    post = segment_model({"segments": flat})["emotion"]
    profile = UnflattenSegments(dtype="float32", name="profile")(post, segments)
    stats = ProfileStatistics(percentiles, dtype="float32", name="profile_statistics")(profile, counts)
    num_classes = segment_model.output["emotion"].shape[-1]
    layer = forest if isinstance(forest, RandomForest) else RandomForest.from_sklearn(
        forest, num_classes, name="emotion")
    emotion = layer(stats)
    segment_mean = MaskedTimeAverage(dtype="float32", name="segment_mean")(profile, counts)
    return keras.Model({"features": features, "num_frames": num_frames},
                       {"emotion": emotion, "segment_mean": segment_mean}, name=name)
