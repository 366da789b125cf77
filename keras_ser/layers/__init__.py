"""Small custom Keras layers: frontends, masked normalisation, pooling, attention, excitation."""

from keras_ser.layers.audio import AudioFrontend, MaskedNormalization, sequence_mask

__all__ = ["AudioFrontend", "MaskedNormalization", "sequence_mask"]
