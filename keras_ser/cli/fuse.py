"""keras_ser-fuse A B OUT: one SavedModel averaging two exports' class probabilities (late
fusion: a network and the openSMILE reference, as the hybrid rows of docs/results.md).
See `keras_ser.serving.fusion`."""

import argparse
import os
import sys

from keras_ser.errors import KerasSerError


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras_ser-fuse",
        description="One SavedModel averaging two exports' class probabilities (late fusion; see keras_ser.serving.fusion).")
    parser.add_argument("a", help="export or run folder of the first part (e.g. a network's)")
    parser.add_argument("b", help="export or run folder of the second part (e.g. the functionals reference's)")
    parser.add_argument("out", help="the fused model's folder (its version folder is written inside)")
    parser.add_argument("--weight", type=float, default=0.5, help="weight of a (b: 1 - weight); default 0.5")
    parser.add_argument("--temperature-a", type=float, default=1.0, help="soften a: p ** (1 / T), renormalised")
    parser.add_argument("--temperature-b", type=float, default=1.0)
    parser.add_argument("--version", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_ser.serving.fusion import export_fusion

    try:
        out = export_fusion(args.a, args.b, args.out, args.weight, args.temperature_a, args.temperature_b,
                            args.version)
    except KerasSerError as exc:
        print(f"keras_ser-fuse: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
