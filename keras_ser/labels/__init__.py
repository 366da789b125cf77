"""Training targets derived from corpus labels (MLEE's hard/soft/existence targets; StrengthNet's
ranking labels follow)."""

from keras_ser.labels.emotion_targets import (
    TargetSet,
    dominant_labels,
    existence_targets,
    make_targets,
    soft_targets,
    vote_counts,
)

__all__ = ["TargetSet", "dominant_labels", "existence_targets", "make_targets", "soft_targets", "vote_counts"]
