"""Small custom Keras layers: frontends, masks, normalisation, pooling, attention, segments,
profile statistics, a random forest, word alignment pooling and cross-modality excitation."""

from keras_ser.layers.attention import StructuredSelfAttention
from keras_ser.layers.audio import (
    AudioFrontend,
    ChannelAugment,
    MaskedNormalization,
    SpecAugment,
    UtteranceNormalization,
    sequence_mask,
)
from keras_ser.layers.forest import RandomForest
from keras_ser.layers.fusion import (
    AlignmentPooling,
    CrossModalityExcitation,
    MaskedMax,
    WordAlignment,
)
from keras_ser.layers.masking import (
    ApplyTimeMask,
    DownsampleLengths,
    LengthMask,
    MaskedMeanStd,
    MaskedTimeAverage,
    RepeatOverTime,
    ShrinkLengths,
)
from keras_ser.layers.segments import (
    FlattenSegments,
    ProfileStatistics,
    Segmenter,
    UnflattenSegments,
)

__all__ = ["ApplyTimeMask", "AudioFrontend", "ChannelAugment", "DownsampleLengths", "LengthMask", "MaskedNormalization",
           "MaskedMeanStd", "MaskedTimeAverage", "RepeatOverTime", "FlattenSegments", "SpecAugment", "ProfileStatistics", "RandomForest", "Segmenter",
           "UnflattenSegments", "UtteranceNormalization", "StructuredSelfAttention", "sequence_mask", "AlignmentPooling",
           "CrossModalityExcitation", "MaskedMax", "ShrinkLengths", "WordAlignment"]
