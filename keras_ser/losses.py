"""Losses that Keras lacks."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ser")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Class-wise binary cross-entropy with separate weights for positives and negatives.

    The MLEE paper's class weights: for each class, inverse existent / non-existent frequency.
    `loss = mean_k -(pos_k y_k log p_k + neg_k (1 - y_k) log(1 - p_k))`; takes probabilities.

    Args:
        pos_weight, neg_weight: sequences of K floats (None: 1).
    """

    def __init__(self, pos_weight=None, neg_weight=None, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weight = None if pos_weight is None else [float(w) for w in pos_weight]
        self.neg_weight = None if neg_weight is None else [float(w) for w in neg_weight]

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, "float32")
        eps = keras.config.epsilon()
        p = ops.clip(y_pred, eps, 1.0 - eps)
        pos = 1.0 if self.pos_weight is None else ops.convert_to_tensor(self.pos_weight, "float32")
        neg = 1.0 if self.neg_weight is None else ops.convert_to_tensor(self.neg_weight, "float32")
        return ops.mean(-(pos * y_true * ops.log(p) + neg * (1.0 - y_true) * ops.log(1.0 - p)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "pos_weight": self.pos_weight, "neg_weight": self.neg_weight}


@keras.saving.register_keras_serializable(package="keras_ser")
class MaskedMAE(keras.losses.Loss):
    """Mean absolute error over the real frames of each utterance, then over the batch.

    Targets `(batch, frames)` carry `pad_value` (default -1) on padded frames, which are ignored;
    an utterance's loss is the mean over its real frames, so long and short utterances weigh the
    same (StrengthNet's frame loss; the original code also trained on the padding).
    """

    def __init__(self, pad_value=-1.0, name="masked_mae", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_value = float(pad_value)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        real = ops.cast(ops.not_equal(y_true, self.pad_value), "float32")
        err = ops.sum(ops.abs(y_true - y_pred) * real, axis=-1)
        return err / ops.maximum(ops.sum(real, axis=-1), 1.0)

    def get_config(self):
        return {**super().get_config(), "pad_value": self.pad_value}


@keras.saving.register_keras_serializable(package="keras_ser")
class RankingMAE(keras.losses.Loss):
    """Mean absolute error plus a pairwise ranking term over the batch (RankNet's logistic loss).

    Not in StrengthNet's paper (beyond it; `strength.rank_weight`). With weak labels the MAE's
    minimiser drifts to each input's conditional median, which keeps the level and loses the
    order; the ranking term scores only the order. For every pair of utterances in the batch
    whose targets differ by more than `margin` (the higher `i`, the lower `j`), it adds
    `softplus(-(p_i - p_j) / temperature)`; each utterance carries its share of the mean over
    pairs, so the batch mean is `MAE + rank_weight * mean pair loss`. Targets and predictions
    are `(batch,)` or `(batch, 1)`; a batch without such a pair adds 0. On StrengthNet's RAVDESS
    inner folds it spread the predictions without ordering them better (docs/results/strengthnet.md).

    Args:
        rank_weight: float >= 0. Weight of the ranking term (0: plain MAE).
        temperature: float > 0. Scale of the score differences, in target units.
        margin: float >= 0. Pairs closer than this are not ranked (label noise).
    """

    def __init__(self, rank_weight=1.0, temperature=0.05, margin=0.0, name="ranking_mae", **kwargs):
        super().__init__(name=name, **kwargs)
        if rank_weight < 0 or temperature <= 0 or margin < 0:
            raise ValueError(f"RankingMAE: need rank_weight >= 0, temperature > 0, margin >= 0; got "
                             f"{rank_weight}, {temperature}, {margin}")
        self.rank_weight, self.temperature, self.margin = float(rank_weight), float(temperature), float(margin)

    def call(self, y_true, y_pred):
        y_true = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        y_pred = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
        mae = ops.abs(y_true - y_pred)
        if self.rank_weight == 0:
            return mae
        above = ops.cast(y_true[:, None] - y_true[None, :] > self.margin, "float32")  # [i, j]: i ranks above j
        pair = ops.softplus(-(y_pred[:, None] - y_pred[None, :]) / self.temperature) * above
        batch = ops.cast(ops.shape(y_true)[0], "float32")
        share = ops.sum(pair, axis=1) * batch / ops.maximum(ops.sum(above), 1.0)
        return mae + self.rank_weight * share

    def get_config(self):
        return {**super().get_config(), "rank_weight": self.rank_weight, "temperature": self.temperature,
                "margin": self.margin}
