"""keras_ser-synth OUT_DIR [--size tiny|default|large] [--seed N] [--speakers N] [--per-speaker-emotion N]:
write the synthetic corpus.

`--speakers` and `--per-speaker-emotion` override the size's numbers: a corpus of any size, for
training on as `data.corpus=manifest data.root=OUT_DIR/manifest.jsonl` (it keeps the true
strength, blends and changes, so StrengthNet runs still score against the truth).
"""

import argparse
import os
import sys

from keras_ser.config import SYNTHETIC_SIZES


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras_ser-synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--size", default="default", choices=SYNTHETIC_SIZES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speakers", type=_positive, default=None, help="number of speakers (overrides --size's)")
    parser.add_argument("--per-speaker-emotion", type=_positive, default=None,
                        help="utterances per speaker and emotion (overrides --size's)")
    args = parser.parse_args(argv)
    from keras_ser.corpora import synthetic

    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        print(f"keras_ser-synth: {args.out_dir} is a file; give a folder to write the corpus into", file=sys.stderr)
        return 2
    try:
        result = synthetic.generate(args.out_dir, size=args.size, seed=args.seed, n_speakers=args.speakers,
                                    per_speaker_emotion=args.per_speaker_emotion)
    except OSError as exc:  # a read-only folder, a full disk: the error names the path
        print(f"keras_ser-synth: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
