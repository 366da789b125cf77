"""A fitted scikit-learn random forest as a Keras layer, so that a SavedModel holds it.

    layer = RandomForest.from_sklearn(forest, num_classes=K)
    probs = layer(x)        # == forest.predict_proba(x) (tested), columns 0..K-1

The trees are flattened into arrays (split feature, threshold, children, leaf class
distribution) stored as non-trainable weights; `call` walks every tree `max_depth` steps in
parallel (leaves point at themselves). Thresholds and comparisons are float64 with the input cast
from float32, as scikit-learn does (`X` as float32, `x <= threshold` in double), so decisions
agree exactly on the same float32 input. No pickle is involved: the `.keras` file and the
SavedModel carry the arrays, whatever scikit-learn version reads or wrote them.
"""

import keras
import numpy as np
import tensorflow as tf

ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")


def forest_arrays(forest, num_classes=None):
    """The flattened arrays of a fitted `RandomForestClassifier` (or a list of fitted trees).

    Returns `(arrays, max_depth)`; `value` has one column per class 0..num_classes-1 (classes the
    forest never saw get probability 0), rows normalised as `predict_proba` normalises them.
    """
    estimators = getattr(forest, "estimators_", None)
    if estimators is None:
        raise ValueError("forest_arrays: the forest is not fitted")
    classes = np.asarray(forest.classes_).astype(int)
    k = int(num_classes if num_classes is not None else classes.max() + 1)
    if classes.min() < 0 or classes.max() >= k:
        raise ValueError(f"forest_arrays: classes {classes.tolist()} are not all in 0..{k - 1}")
    parts = {name: [] for name in ARRAYS}
    offset, depth = 0, 0
    for est in estimators:
        t = est.tree_
        n = t.node_count
        leaf = t.children_left < 0
        own = np.arange(n)
        parts["feature"].append(np.where(leaf, 0, t.feature).astype(np.int32))
        parts["threshold"].append(np.where(leaf, 0.0, t.threshold).astype(np.float64))
        parts["left"].append((np.where(leaf, own, t.children_left) + offset).astype(np.int32))
        parts["right"].append((np.where(leaf, own, t.children_right) + offset).astype(np.int32))
        v = np.asarray(t.value[:, 0, :], np.float64)
        v = v / np.maximum(v.sum(1, keepdims=True), 1e-300)
        full = np.zeros((n, k), np.float32)
        full[:, classes] = v
        parts["value"].append(full)
        parts["roots"].append(np.array([offset], np.int32))
        offset += n
        depth = max(depth, int(t.max_depth))
    return {name: np.concatenate(v) for name, v in parts.items()}, depth


_DTYPES = {"feature": "int32", "threshold": "float64", "left": "int32", "right": "int32",
           "value": "float32", "roots": "int32"}


@keras.saving.register_keras_serializable(package="keras_ser")
class RandomForest(keras.layers.Layer):
    """Probabilities of a random forest: `(batch, num_features)` → `(batch, num_classes)`.

    Args:
        num_nodes, num_trees, num_features, num_classes, max_depth: the forest's sizes (saved in
            the config; the arrays are weights).
        arrays: dict from `forest_arrays` (omitted when a saved model is loaded).
    """

    def __init__(self, num_nodes, num_trees, num_features, num_classes, max_depth, arrays=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_nodes, self.num_trees = int(num_nodes), int(num_trees)
        self.num_features, self.num_classes, self.max_depth = int(num_features), int(num_classes), int(max_depth)
        self._arrays = arrays

    @classmethod
    def from_sklearn(cls, forest, num_classes=None, **kwargs):
        arrays, depth = forest_arrays(forest, num_classes)
        return cls(len(arrays["feature"]), len(arrays["roots"]), int(forest.n_features_in_), arrays["value"].shape[1],
                   depth, arrays=arrays, **kwargs)

    def build(self, input_shape=None):
        shapes = {"feature": (self.num_nodes,), "threshold": (self.num_nodes,), "left": (self.num_nodes,),
                  "right": (self.num_nodes,), "value": (self.num_nodes, self.num_classes), "roots": (self.num_trees,)}
        for name in ARRAYS:
            setattr(self, name, self.add_weight(shape=shapes[name], dtype=_DTYPES[name], initializer="zeros",
                                                trainable=False, name=name))
        if self._arrays is not None:
            for name in ARRAYS:
                getattr(self, name).assign(np.asarray(self._arrays[name], _DTYPES[name]))
            self._arrays = None

    def call(self, x):
        x = tf.cast(tf.cast(x, tf.float32), tf.float64)
        node = tf.broadcast_to(self.roots[None, :], [tf.shape(x)[0], self.num_trees])
        for _ in range(self.max_depth):
            go_left = tf.gather(x, tf.gather(self.feature, node), batch_dims=1) <= tf.gather(self.threshold, node)
            node = tf.where(go_left, tf.gather(self.left, node), tf.gather(self.right, node))
        return tf.reduce_mean(tf.gather(self.value, node), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_nodes": self.num_nodes, "num_trees": self.num_trees,
                "num_features": self.num_features, "num_classes": self.num_classes, "max_depth": self.max_depth}
