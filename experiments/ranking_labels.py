"""How well do relative-attribute ranking labels recover a known strength? (synthetic corpus)

    python experiments/ranking_labels.py [--size default] [--out docs/results/ranking_synthetic.json]

Extracts IS09 functionals (TensorFlow-free workers, cached beside the corpus), fits
`StrengthLabeler` over a grid (per, C, similar, normalise) and prints the SRCC of the labels
against the synthetic corpus's true strength, over all emotional utterances and per emotion, plus
the SRCC over "pure" utterances (no blended second emotion, no mid-utterance change), the
ceiling of a speaker-independent ridge regression trained on the true strength itself, and, for
scale, the SRCC of one hand-picked cue (the active-speech RMS level) per emotion.
"""

import argparse
import json
import os
import sys

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="default")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from keras_ser.corpora import synthetic
    from keras_ser.labels.ranking import StrengthLabeler
    from keras_ser.training.metrics import spearman
    from tfrecords_tools.opensmile_features import extract_functionals

    root = synthetic.default_root(args.size)
    man = synthetic.generate(root, size=args.size, seed=0).manifest
    X, _, _ = extract_functionals(man["path"].tolist(), "IS09", 2, os.path.join(root, "is09.npz"))
    spk, emo, truth = man["speaker"].to_numpy(str), man["emotion"].to_numpy(str), man["strength"].to_numpy(float)
    e = emo != "neutral"
    pure = e & synthetic.pure_mask(man)
    rows = []
    for per in ("speaker_emotion", "emotion"):
        for C in (0.001, 0.01, 0.1, 1.0):
            for similar in (False, True):
                lab = StrengthLabeler(C=C, per=per, similar=similar).fit(X, spk, emo)
                for norm in ("group", "corpus"):
                    st = lab.strengths(X, spk, emo, norm)
                    row = {"per": per, "C": C, "similar": similar, "normalise": norm,
                           "srcc": round(spearman(st[e], truth[e]), 3), "srcc_pure": round(spearman(st[pure], truth[pure]), 3),
                           "per_emotion": {k: round(spearman(st[emo == k], truth[emo == k]), 3) for k in sorted(set(emo[e]))}}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    from sklearn.linear_model import Ridge

    Xs = (X - X.min(0)) / np.maximum(X.max(0) - X.min(0), 1e-12)
    ceiling = {}
    for k in sorted(set(emo[e])):
        preds = np.zeros(len(X))
        for s in sorted(set(spk)):
            tr, te = (emo == k) & (spk != s), (emo == k) & (spk == s)
            preds[te] = Ridge(1.0).fit(Xs[tr], truth[tr]).predict(Xs[te])
        ceiling[k] = round(spearman(preds[emo == k], truth[emo == k]), 3)
    print("ridge on the true strength, leave-one-speaker-out:", ceiling)
    # One hand-picked cue for scale: the active-speech level (the synthesizer sets it from the
    # emotion's energy profile times the strength; sad gets quieter, hence negative).
    from keras_ser.audio.io import load_audio

    level = np.array([_active_level_db(load_audio(p)) for p in man["path"]])
    level_srcc = {k: {"all": round(spearman(level[emo == k], truth[emo == k]), 3),
                      "pure": round(spearman(level[pure & (emo == k)], truth[pure & (emo == k)]), 3)}
                  for k in sorted(set(emo[e]))}
    print("active-speech RMS level (dB) against the true strength:", level_srcc)
    doc = {"size": args.size, "utterances": int(len(man)), "emotional": int(e.sum()), "pure": int(pure.sum()),
           "grid": rows, "ridge_ceiling_per_emotion": ceiling, "level_srcc_per_emotion": level_srcc}
    if args.out:
        from keras_ser.utils import write_json

        write_json(doc, args.out)
    return 0


def _active_level_db(wav, floor=1e-3):
    """RMS level in dB of the samples above `floor` (speech, not the silence around it)."""
    active = np.abs(wav) > floor
    return 20 * np.log10(np.sqrt(np.mean(wav[active] ** 2)) + 1e-12) if active.any() else -120.0


if __name__ == "__main__":
    sys.exit(main())
