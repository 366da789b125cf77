"""Feature normalisation statistics (NumPy), computed on the training split only.

`FeatureStats` holds sufficient statistics (count, sum, sum of squares per feature dimension), so
statistics of several shards merge exactly: the record writer stores one per shard, and training
merges those of its training shards only. The resulting mean and standard deviation are baked
into the model by `keras_ser.layers.MaskedNormalization`, so they travel with the export.
"""

import dataclasses
import json

import numpy as np

from keras_ser.utils import write_text


@dataclasses.dataclass
class FeatureStats:
    """Per-dimension count, sum and sum of squares of feature frames (float64)."""

    count: int
    sum: np.ndarray
    sumsq: np.ndarray

    @classmethod
    def zeros(cls, dim):
        return cls(0, np.zeros(dim, np.float64), np.zeros(dim, np.float64))

    @classmethod
    def from_features(cls, features):
        """Stats of an array `(frames, dim)` of real (unpadded) frames."""
        f = np.asarray(features, np.float64)
        return cls(int(f.shape[0]), f.sum(axis=0), np.square(f).sum(axis=0))

    def update(self, features):
        f = np.asarray(features, np.float64)
        self.count += int(f.shape[0])
        self.sum += f.sum(axis=0)
        self.sumsq += np.square(f).sum(axis=0)
        return self

    def merge(self, other):
        return FeatureStats(self.count + other.count, self.sum + other.sum, self.sumsq + other.sumsq)

    @classmethod
    def merge_all(cls, stats):
        stats = list(stats)
        if not stats:
            raise ValueError("no feature statistics to merge")
        out = cls.zeros(len(stats[0].sum))
        for s in stats:
            out = out.merge(s)
        return out

    @property
    def mean(self):
        if self.count == 0:
            raise ValueError("feature statistics over zero frames")
        return self.sum / self.count

    @property
    def variance(self):
        return np.maximum(self.sumsq / self.count - np.square(self.mean), 0.0)

    def std(self, floor=1e-5):
        return np.sqrt(np.maximum(self.variance, floor**2))

    def to_dict(self):
        return {"count": self.count, "sum": self.sum.tolist(), "sumsq": self.sumsq.tolist()}

    @classmethod
    def from_dict(cls, d):
        return cls(int(d["count"]), np.asarray(d["sum"], np.float64), np.asarray(d["sumsq"], np.float64))

    def save(self, path):
        write_text(json.dumps(self.to_dict()), path)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))
