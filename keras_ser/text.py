"""Words for FG_CME: a vocabulary with a real out-of-vocabulary token, GloVe-format embeddings.

    vocab = Vocabulary.build(manifest["text"], min_count=1)
    ids = vocab.ids(["kids", "are", "zyzzyva"])      # unknown words get OOV_ID (1), never PAD_ID (0)
    matrix, found = load_embeddings("glove.840B.300d.txt", vocab)

The padding id 0 is masked everywhere; the OOV id 1 is a learnt word like any other, so an unknown
word is never mistaken for padding (the original code mapped unknown words to the padding index).
"""

import collections
import json

import numpy as np

from keras_ser.corpora.alignments import normalise_word, transcript_words
from keras_ser.errors import CorpusError
from keras_ser.utils import write_text

PAD, OOV = "<pad>", "<unk>"
PAD_ID, OOV_ID = 0, 1


class Vocabulary:
    """Token ↔ id; ids 0 and 1 are padding and out-of-vocabulary."""

    def __init__(self, words):
        words = [w for w in words if w not in (PAD, OOV)]
        if len(set(words)) != len(words):
            raise ValueError("Vocabulary: duplicate words")
        self.tokens = [PAD, OOV] + list(words)
        self.index = {w: i for i, w in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts, min_count=1):
        """From transcripts (strings) or word lists; words seen fewer than `min_count` times are OOV."""
        counts = collections.Counter()
        for t in texts:
            if t is None:
                continue
            counts.update(transcript_words(t) if isinstance(t, str) else [normalise_word(w) for w in t])
        return cls(sorted(w for w, c in counts.items() if c >= min_count and w))

    def __len__(self):
        return len(self.tokens)

    def ids(self, words):
        return np.array([self.index.get(normalise_word(w), OOV_ID) for w in words], np.int32)

    def save(self, path):
        write_text(json.dumps({"tokens": self.tokens}, ensure_ascii=False), path)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            tokens = json.load(f)["tokens"]
        if tokens[:2] != [PAD, OOV]:
            raise CorpusError(f"{path}: not a keras_ser vocabulary (ids 0 and 1 must be {PAD}, {OOV})")
        return cls(tokens[2:])


def load_embeddings(path, vocab, seed=0, scale=0.1):
    """An embedding matrix `(len(vocab), dim)` from a GloVe-format text file (`word v1 ... vd`).

    Words of `vocab` missing from the file, and the OOV row, start as N(0, scale²) (they are
    trained); the padding row is zero. Matching is on the normalised (lower-case) word; the
    first occurrence wins. Returns `(matrix, number of vocabulary words found)`. A line with a
    different dimension raises `CorpusError` naming the file and line.
    """
    rng = np.random.default_rng(seed)
    found, dim, rows = 0, None, {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 3:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                # GloVe 840B has a few tokens containing spaces: the vector is the last `dim` fields.
                if len(parts) - 1 < dim:
                    raise CorpusError(f"{path}:{i}: {len(parts) - 1} values, expected {dim}")
                parts = [" ".join(parts[: len(parts) - dim])] + parts[len(parts) - dim:]
            word = normalise_word(parts[0])
            idx = vocab.index.get(word)
            if idx is None or idx in rows or idx < 2:
                continue
            try:
                rows[idx] = np.asarray(parts[1:], np.float32)
            except ValueError:
                raise CorpusError(f"{path}:{i}: values are not numbers") from None
    if dim is None:
        raise CorpusError(f"{path}: no vectors")
    matrix = (scale * rng.standard_normal((len(vocab), dim))).astype(np.float32)
    matrix[PAD_ID] = 0.0
    for idx, v in rows.items():
        matrix[idx] = v
        found += 1
    return matrix, found
