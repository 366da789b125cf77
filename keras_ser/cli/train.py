"""keras_ser-train PRESET_OR_YAML [key=value ...]

Runs one configuration: data preparation (cached) → training (early stopping, best checkpoint,
resumable) → evaluation on held-out folds → export for TF Serving.

Examples:
  keras_ser-train mlee/synthetic
  keras_ser-train mlee/synthetic data.synthetic_size=tiny train.epochs=2 output_dir=runs/quick
  keras_ser-train mlee/emodb data.root=../shared/data/emodb protocol.max_folds=3
"""

import argparse
import os
import sys

from keras_ser.cli import quiet_training
from keras_ser.config import list_presets, load_config
from keras_ser.errors import KerasSerError


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras_ser-train", description=__doc__.split("\n\n")[1],
        epilog=__doc__.split("\n\n", 2)[2] + "\npresets: " + ", ".join(list_presets()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="a preset (system/corpus) or a YAML file")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=3")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--force-new", action="store_true",
                        help="start afresh even when output_dir holds another config's run (kept beside it)")
    args = parser.parse_args(argv)

    try:
        cfg = load_config(args.config, args.overrides)
    except KerasSerError as exc:
        print(f"keras_ser-train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_ser.training.runner import run  # TensorFlow: not before it is needed

    quiet_training()

    try:
        summary = run(cfg, force_new=args.force_new)
    except KerasSerError as exc:
        print(f"keras_ser-train: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only or missing folder, a full disk: the error names the path
        print(f"keras_ser-train: {exc}", file=sys.stderr)
        return 2
    print(f"results in {os.path.dirname(summary.get('export', '')) or cfg.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
