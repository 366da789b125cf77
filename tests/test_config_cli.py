import subprocess
import sys

import pytest

from keras_ser.config import list_presets, load_config
from keras_ser.errors import ConfigError


def test_presets_load_and_overrides_apply():
    assert "mlee/synthetic" in list_presets()
    for name in list_presets():
        load_config(name)
    cfg = load_config("mlee/synthetic", ["train.epochs=3", "data.emotions=[neutral, sad]", "train.learning_rate=1e-3"])
    assert cfg.train.epochs == 3 and cfg.data.emotions == ["neutral", "sad"] and cfg.train.learning_rate == 1e-3


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown config key train.epoch"),
    ("nonsense.x=1", "unknown config key nonsense"),
    ("train.epochs=three", "train.epochs: expected int"),
    ("data.corpus=emodb", "data.root is required"),
    ("protocol.name=holdout", "protocol.name"),
    ("protocol.dev=1.5", "protocol.dev: 1.5 is not"),
    ("data.synthetic_size=huge", "data.synthetic_size: 'huge' is not one of tiny, default, large"),
    ("protocol.dev=previous", "protocol.dev: 'previous' is not"),
    ("noequals", "is not key=value"),
    ("task.train_set=most", "task.train_set: 'most' is not one of dominant, all"),
    ("task.soft_weighting=votes", "task.soft_weighting: 'votes' is not one of mass, argmax"),
    ("task.variant=fusion", "task.variant: 'fusion' is not one of hard, soft"),
    ("train.strategy=tpu", "train.strategy: 'tpu' is not one of default, mirrored, multi_worker"),
])
def test_bad_config_names_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("mlee/synthetic", [override])


def test_help_does_not_import_tensorflow():
    code = ("import sys; from keras_ser.cli import train\n"
            "try:\n    train.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "TF_NOT_LOADED" in out.stdout and "mlee/synthetic" in out.stdout


def test_cli_bad_override_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "keras_ser.cli.train", "mlee/synthetic", "train.epoch=1"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "train.epoch" in out.stderr and "Traceback" not in out.stderr


def test_print_config():
    out = subprocess.run([sys.executable, "-m", "keras_ser.cli.train", "mlee/synthetic", "train.epochs=7",
                          "--print-config"], capture_output=True, text=True, check=True)
    assert "epochs: 7" in out.stdout
