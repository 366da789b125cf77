"""Small custom Keras layers: frontends, masks, normalisation, pooling, attention, excitation."""

from keras_ser.layers.attention import StructuredSelfAttention
from keras_ser.layers.audio import AudioFrontend, MaskedNormalization, sequence_mask
from keras_ser.layers.masking import ApplyTimeMask, DownsampleLengths, LengthMask, MaskedTimeAverage

__all__ = ["ApplyTimeMask", "AudioFrontend", "DownsampleLengths", "LengthMask", "MaskedNormalization",
           "MaskedTimeAverage",
           "StructuredSelfAttention", "sequence_mask"]
