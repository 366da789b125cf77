"""Unsupervised adaptation to an unseen corpus: batch-normalisation statistics re-estimated on
its own audio (AdaBN; Li et al., "Revisiting batch normalization for practical domain
adaptation", 2016). Not in any of the papers; `data.eval_adapt: batchnorm`.

Each `BatchNormalization` layer's moving mean and variance are replaced by the mean and variance
of its inputs over the unseen corpus's utterances (no labels used), layer after layer in the
order of the graph, so that each layer's statistics are those of the inputs it sees once the
layers before it are adapted. Utterances go through one at a time without padding, so every
position is a real frame (padding would enter the statistics otherwise). The weights are put
back when the block ends: the fold's model, which may be exported, is not changed.
"""

import contextlib

import keras
import numpy as np

from keras_ser.audio.normalization import FeatureStats


def batchnorm_layers(model):
    """`[(model holding the layer, layer)]` of every BatchNormalization in `model`, in graph order,
    descending into nested models (e.g. MLEE's encoder)."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            out.append((model, layer))
        elif isinstance(layer, keras.Model):
            out.extend(batchnorm_layers(layer))
    return out


def unpadded(batches, names):
    """Each utterance of `batches` (dicts of model inputs, `features` and `num_frames` among them)
    alone, its features cut to its real frames: input dicts of batch size 1, one at a time."""
    for x in batches:
        n = np.asarray(x["num_frames"]).astype(int)
        for i, k in enumerate(n):
            one = {name: np.asarray(x[name])[i:i + 1] for name in names}
            one["features"] = one["features"][:, :max(int(k), 1)]
            yield one


def _statistics(feeder, layer, examples):
    """`FeatureStats` over every position of `examples` of `layer`'s input channels; None when
    there is no example."""
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    stats = None
    for x in examples:
        h = np.asarray(feeder(x))
        h = np.moveaxis(h, axis, -1).reshape(-1, h.shape[axis])
        stats = FeatureStats.from_features(h) if stats is None else stats.update(h)
    return stats


@contextlib.contextmanager
def adapted_batchnorm(model, examples):
    """Within the block, `model`'s batch-normalisation statistics are those of `examples`: input
    dicts of one unpadded utterance each (`unpadded`), as a list or as a function returning a
    fresh iterable of them (one pass per layer, so the corpus is never held in memory); restored
    after the block.

    Raises:
        ValueError: the model has no batch normalisation, or no example is given.
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(f"data.eval_adapt=batchnorm: the model {model.name!r} has no batch normalisation to adapt")
    passes = examples if callable(examples) else (lambda: examples)
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for _, layer in layers]
    try:
        for owner, layer in layers:
            feeder = keras.Model(owner.input, layer.input)
            feed = passes()
            if owner is not model:  # a nested model called on the outer model's own inputs (MLEE's encoder)
                if not isinstance(owner.input, dict):
                    raise ValueError(f"data.eval_adapt=batchnorm: nested model {owner.name!r} does not take named inputs")
                feed = ({k: x[k] for k in owner.input} for x in feed)
            stats = _statistics(feeder, layer, feed)
            if stats is None:
                raise ValueError("data.eval_adapt=batchnorm: no utterance of the unseen corpus to adapt to")
            layer.moving_mean.assign(stats.mean.astype("float32"))
            layer.moving_variance.assign(stats.variance.astype("float32"))
        yield model
    finally:
        for (_, layer), (mean, var) in zip(layers, saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(var)
