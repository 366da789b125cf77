"""keras_ser: speech emotion recognition in Keras 3 / TensorFlow.

Re-implements StrengthNet, MLEE, EPR and FG_CME. Importing this package does not import
TensorFlow; the submodules that need it import it themselves.
"""

__version__ = "0.1.0"
