"""TFRecord tools for keras_ser: record schema, sharded atomic writer, tf.data reader, inspection.

Importing this package does not import TensorFlow.
"""

from tfrecords_tools.reader import RecordSet, bucket_boundaries_for, padded_fraction
from tfrecords_tools.writer import write_records

__all__ = ["RecordSet", "bucket_boundaries_for", "padded_fraction", "write_records"]
