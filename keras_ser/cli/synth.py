"""keras_ser-synth OUT_DIR [--size tiny|default|large] [--seed N]: write the synthetic corpus."""

import argparse
import sys

from keras_ser.config import SYNTHETIC_SIZES


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras_ser-synth", description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--size", default="default", choices=SYNTHETIC_SIZES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from keras_ser.corpora import synthetic

    result = synthetic.generate(args.out_dir, size=args.size, seed=args.seed)
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
