"""Console scripts. Nothing here imports TensorFlow at module level: `--help` stays fast.

Process-wide settings (warning and log filters) are made here, at the scripts' entry, never by
library calls: a notebook or a program that calls `keras_ser.training.runner.run` keeps its own.
"""

import logging
import warnings


class _NoRetracingWarning(logging.Filter):
    """Length buckets give a handful of batch shapes by design; each traces once."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_training():
    """Silence what a training run warns about by design: Keras on finite, shuffled tf.data
    pipelines (every epoch ends when its data does) and TensorFlow's retracing of the few
    length-bucket shapes."""
    warnings.filterwarnings("ignore", message=".*shuffle=True.*was passed.*")
    warnings.filterwarnings("ignore", message=".*Your input ran out of data.*")
    log = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetracingWarning) for f in log.filters):
        log.addFilter(_NoRetracingWarning())
