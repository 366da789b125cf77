"""FG_CME: fine-grained cross-modality excitation of audio and text (PAPERS.md §4).

    features (40-d log filterbank, 25/10 ms), z-normalised
    acoustic: Conv1D 64 (k 5) → Conv1D 128 (k 2) → Conv1D 128 (k 2), stride 1, valid padding
    alignment pooling: per word, mean and max of the conv frames inside its interval → Za (256)
    semantic: word embeddings (GloVe 300-d or trainable) → linear W_s → Zs (256)
    CME: Ẑa = σ(W_e Zs) ⊙ Za, Ẑs = σ(W_a Za) ⊙ Zs
    concat → BiLSTM(256) over the words → max over the words → Dense 128 (ReLU) → Dense K softmax

The paper does not give the convolutions' activations; ReLU is the default here, and
`conv_activation=None` is the original code's (no non-linearity between them). The code's other
differences are options: `widen=3` (each word widened by ±3 frames), `residual=True` and
`acoustic_gate="word_id"` (its v2 gates). Empty words pool to zeros (the code: -1e6 in the max).

Inputs, all named (the export serves audio + words + word boundaries):
    features (batch, frames, 40), num_frames (batch,), word_ids (batch, words) int32 (0 = padding,
    1 = out of vocabulary), word_starts / word_ends (batch, words) seconds, num_words (batch,).
Output: `{"emotion": (batch, K)}`.
"""

import keras

from keras_ser.layers import MaskedNormalization
from keras_ser.layers.fusion import (
    AlignmentPooling,
    CrossModalityExcitation,
    MaskedMax,
    WordAlignment,
)
from keras_ser.layers.masking import LengthMask, ShrinkLengths


def build_fg_cme(num_classes=4, feature_dim=40, vocab_size=2, embedding_dim=300, embeddings=None,
                 train_embeddings=True, mean=None, std=None, conv_filters=(64, 128, 128), conv_kernels=(5, 2, 2),
                 conv_activation="relu", semantic_units=256, lstm_units=256, hidden_units=128, dropout=0.0,
                 excite_acoustic=True, excite_semantic=True, residual=False, acoustic_gate="semantic", widen=0,
                 hop_s=0.01, win_s=0.025, name="fg_cme"):
    """The FG_CME model (see the module docstring for the inputs and the paper/code options).

    Args:
        vocab_size: int. Vocabulary size including padding (0) and OOV (1).
        embeddings: optional `(vocab_size, embedding_dim)` initial matrix (GloVe).
        train_embeddings: bool. Fine-tune the embeddings.
        excite_acoustic, excite_semantic: the ablations (both False = without excitation).
    """
    features = keras.Input((None, feature_dim), name="features")
    num_frames = keras.Input((), dtype="int32", name="num_frames")
    word_ids = keras.Input((None,), dtype="int32", name="word_ids")
    word_starts = keras.Input((None,), name="word_starts")
    word_ends = keras.Input((None,), name="word_ends")
    num_words = keras.Input((), dtype="int32", name="num_words")

    x = MaskedNormalization(mean=mean, std=std, dim=feature_dim, name="normalization")(features, num_frames)
    for i, (f, k) in enumerate(zip(conv_filters, conv_kernels), 1):
        x = keras.layers.Conv1D(f, k, padding="valid", activation=conv_activation, name=f"conv{i}")(x)
    shrink = sum(k - 1 for k in conv_kernels)
    conv_frames = ShrinkLengths(shrink, name="conv_frames")(num_frames)
    align = WordAlignment(hop_s, win_s, centre_offset=shrink // 2, widen=widen, name="alignment")(
        word_starts, word_ends, num_words, conv_frames, x)
    za = AlignmentPooling(name="alignment_pooling")(x, align)

    init = keras.initializers.Constant(embeddings) if embeddings is not None else "uniform"
    emb = keras.layers.Embedding(vocab_size, embedding_dim, embeddings_initializer=init, trainable=train_embeddings,
                                 name="embedding")(word_ids)
    zs = keras.layers.Dense(semantic_units, name="semantic_projection")(emb)

    cme = CrossModalityExcitation(excite_acoustic, excite_semantic, residual, acoustic_gate,
                                  vocab_size if acoustic_gate == "word_id" else None, name="cme")
    za_hat, zs_hat = cme(za, zs, word_ids) if acoustic_gate == "word_id" else cme(za, zs)
    h = keras.layers.Concatenate(name="fuse")([za_hat, zs_hat])
    mask = LengthMask(name="word_mask")(h, num_words)
    h = keras.layers.Bidirectional(keras.layers.LSTM(lstm_units, return_sequences=True), name="blstm")(h, mask=mask)
    u = MaskedMax(name="max_over_words")(h, num_words)
    u = keras.layers.Dense(hidden_units, activation="relu", name="fc")(u)
    if dropout:
        u = keras.layers.Dropout(dropout, name="dropout")(u)
    out = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(u)
    inputs = {"features": features, "num_frames": num_frames, "word_ids": word_ids, "word_starts": word_starts,
              "word_ends": word_ends, "num_words": num_words}
    return keras.Model(inputs, {"emotion": out}, name=name)
