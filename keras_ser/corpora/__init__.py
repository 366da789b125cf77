"""Corpora: one loader per corpus layout, all returning one manifest schema (pandas).

    from keras_ser.corpora import load_corpus
    manifest, skipped = load_corpus("emodb", "../shared/data/emodb")
    manifest, skipped = load_corpus("manifest", "my_corpus.jsonl")   # your own corpus
"""

import importlib

from keras_ser.corpora.manifest import (
    EMOTIONS,
    MANIFEST_COLUMNS,
    LoadResult,
    make_manifest,
    read_manifest,
    save_manifest,
    validate_manifest,
)

LOADERS = ("emodb", "ravdess", "savee", "esd", "casia", "iemocap", "tess", "cremad", "synthetic", "manifest")
"""Corpus names `load_corpus` knows; "manifest" reads the user's own manifest file (`read_manifest`)."""


def load_corpus(name, root, **kwargs):
    """Load corpus `name` (one of `LOADERS`) from `root` as a `LoadResult(manifest, skipped)`."""
    if name not in LOADERS:
        raise ValueError(f"unknown corpus {name!r}; known: {LOADERS}")
    module = importlib.import_module(f"keras_ser.corpora.{name}")
    return module.load(root, **kwargs)


__all__ = [
    "EMOTIONS", "LOADERS", "MANIFEST_COLUMNS", "LoadResult", "load_corpus", "make_manifest",
    "read_manifest", "save_manifest", "validate_manifest",
]
