"""One module per paper, each a builder of a functional model with named heads."""

from keras_ser.models.epr import build_epr_model, build_vgg
from keras_ser.models.fg_cme import build_fg_cme
from keras_ser.models.mlee import build_mlee_classifier, build_mlee_encoder
from keras_ser.models.strengthnet import build_strengthnet

__all__ = ["build_epr_model", "build_fg_cme", "build_vgg", "build_mlee_classifier", "build_mlee_encoder", "build_strengthnet"]
