"""Audio: decode + resample, TensorFlow feature frontends (one preset per paper), augmentation.

TensorFlow is imported only by the functions that need it.
"""

from keras_ser.audio.augment import speed_perturb
from keras_ser.audio.frontends import (
    PRESETS,
    FrontendConfig,
    compute_features,
    features_numpy,
    get_frontend_config,
    mel_filterbank,
)
from keras_ser.audio.io import SAMPLE_RATE, load_audio, resample, write_audio
from keras_ser.audio.normalization import FeatureStats

__all__ = [
    "PRESETS", "SAMPLE_RATE", "FeatureStats", "FrontendConfig", "compute_features",
    "features_numpy", "get_frontend_config", "load_audio", "mel_filterbank", "resample",
    "speed_perturb", "write_audio",
]
