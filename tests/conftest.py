import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_DATA = os.environ.get("KERAS_SER_SHARED_DATA", os.path.join(HERE, "..", "..", "shared", "data"))


def shared_corpus(name):
    """Path of a corpus in ../shared/data, or skip the test when it is absent."""
    path = os.path.join(SHARED_DATA, name)
    if not os.path.isdir(path):
        pytest.skip(f"{path} is absent (real corpora are optional)")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    from keras_ser.corpora import synthetic

    return synthetic.generate(str(tmp_path_factory.mktemp("synth") / "tiny"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_records(tiny_corpus, tmp_path_factory):
    from tfrecords_tools import write_records

    out = str(tmp_path_factory.mktemp("records") / "mlee")
    return write_records(tiny_corpus.manifest, out, frontend="epr", progress=False)
