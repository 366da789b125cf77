"""Is the network's cross-corpus loss in its input or in the network? A linear model on its input.

    python experiments/cross_corpus_input_probe.py --folds runs/cross/cnn_pool \
        --out docs/results/cross_logmel_stats.json

The cross-corpus matrix of `experiments/cross_corpus.py` puts the `cnn_pool` network far below
the openSMILE reference on unseen corpora (docs/results.md). This probe trains the reference's
classifier (standardisation, logistic regression C = 0.1, balanced class weights) on pooled
statistics of the network's own input, the records `fg_cme/ravdess_recipe` reads (40 log-mel
bands, silence trimmed at 30 dB): per band the mean, standard deviation, 10th and 90th
percentile over the utterance's frames and the standard deviation of the frame-to-frame
difference (200 numbers). Same folds as the network's matrix (each training corpus's
`<folds>/<corpus>/seed0/folds.json`), each fold's model trained on the fold's training and
development utterances, scored on the fold's test speakers and on every other corpus, unseen
corpora standardised on their own statistics (as the matrix's `data.eval_normalization=corpus`).

Reading: if this linear model transfers as the functionals do, the log-mel input carries what
transfers and the network loses it; if it falls as the network does, the input (or what any
model learns from it on one corpus) is corpus-bound. Deterministic (no seed).
"""

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cross_corpus import COMMON, CORPORA, FUSED  # noqa: E402


def pooled(features):
    """`(frames, bands)` → the 5 * bands statistics named in the module docstring."""
    diff = np.diff(features, axis=0) if len(features) > 1 else np.zeros((1, features.shape[1]))
    return np.concatenate([features.mean(0), features.std(0), np.percentile(features, 10, axis=0),
                           np.percentile(features, 90, axis=0), diff.std(0)])


def corpus_vectors(preset, overrides, per_utterance=False):
    """`{utterance_id: (pooled vector, emotion)}` of one corpus's records under `preset`; with
    `per_utterance`, each band first standardised over the utterance's own frames (so the
    per-band means and sds drop out: 120 numbers)."""
    from keras_ser.config import load_config
    from keras_ser.training import data

    cfg = load_config(preset, [*COMMON, *overrides, "train.verbose=0"])
    manifest = data.load_manifest(cfg)
    rs = data.prepare_records(cfg, manifest)
    emotion = dict(zip(manifest["utterance_id"], manifest["emotion"]))
    out = {}
    for ex in rs.dataset(rs.files(), batch_size=None):
        u = ex["utterance_id"].numpy().decode()
        if u in emotion and emotion[u] in cfg.data.emotions:
            n = int(ex["num_frames"])
            x = ex["features"].numpy()[:n].astype(np.float64)
            if per_utterance:
                x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
                out[u] = (pooled(x)[2 * x.shape[1]:], emotion[u])
            else:
                out[u] = (pooled(x), emotion[u])
    return out, list(cfg.data.emotions)


def scores(model, scaler, vectors, ids, labels):
    from keras_ser.training import metrics as M

    X = scaler.transform(np.stack([vectors[u][0] for u in ids]))
    y = np.array([labels.index(vectors[u][1]) for u in ids])
    res = M.classification_metrics(y, model.predict(X), labels)
    return {"wa": res["wa"], "ua": res["ua"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", required=True, help="the network matrix's runs folder (<corpus>/seed0/folds.json)")
    ap.add_argument("--preset", default="fg_cme/ravdess_recipe")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-utterance", action="store_true",
                    help="standardise each band over the utterance first (cepstral-mean-style normalisation)")
    args = ap.parse_args(argv)

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from keras_ser.utils import read_json, write_json

    vectors, labels = {}, None
    for name, (overrides, _) in CORPORA.items():
        vectors[name], labels = corpus_vectors(args.preset, overrides, args.per_utterance)
        print(f"{name}: {len(vectors[name])} utterances", flush=True)
    own_scaler = {c: StandardScaler().fit(np.stack([v[0] for v in vectors[c].values()])) for c in CORPORA}
    table = {"about": __doc__.split("\n\n")[1].replace("\n", " "), "preset": args.preset, "labels": labels,
             "per_utterance": args.per_utterance, "rows": {}}
    for train in [*CORPORA, FUSED[0]]:
        parts = train.split("+")
        pool = {u: v for c in parts for u, v in vectors[c].items()}
        folds = read_json(os.path.join(args.folds, train, "seed0", "folds.json"))["folds"]
        others = [c for c in CORPORA if c not in parts]
        per_fold = []
        for f in folds:
            ids = [u for u in list(f["train"]) + list(f["dev"]) if u in pool]
            scaler = StandardScaler().fit(np.stack([pool[u][0] for u in ids]))
            model = LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000)
            model.fit(scaler.transform(np.stack([pool[u][0] for u in ids])), [labels.index(pool[u][1]) for u in ids])
            row = {"fold": f["name"], "own": scores(model, scaler, pool, [u for u in f["test"] if u in pool], labels)}
            for c in others:
                row[c] = scores(model, own_scaler[c], vectors[c], sorted(vectors[c]), labels)
            per_fold.append(row)
        mean = {k: {m: float(np.mean([r[k][m] for r in per_fold])) for m in ("wa", "ua")}
                for k in ["own", *others]}
        table["rows"][train] = {"folds": len(per_fold), "mean": mean, "per_fold": per_fold}
        print(f"{train}: " + "; ".join(f"{k} {100 * v['wa']:.1f} / {100 * v['ua']:.1f}" for k, v in mean.items()),
              flush=True)
    write_json(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
