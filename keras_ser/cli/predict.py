"""keras_ser-predict EXPORT_DIR AUDIO [AUDIO ...]: run an exported model on local audio files.

EXPORT_DIR is a version folder (`.../export/mlee/1`) or the model folder (latest version used).
Prints one line per file: the predicted label and the probabilities (or the heads' values).
"""

import argparse
import json
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras_ser-predict", description=__doc__.splitlines()[0])
    parser.add_argument("export_dir")
    parser.add_argument("audio", nargs="+")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_ser.audio.io import load_audio
    from keras_ser.errors import KerasSerError
    from keras_ser.serving.export import latest_version

    path = args.export_dir
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        try:
            path = latest_version(path)
        except FileNotFoundError as exc:
            print(f"keras_ser-predict: {exc}", file=sys.stderr)
            return 2
    with open(os.path.join(path, "keras_ser.json")) as f:
        meta = json.load(f)
    needs = [n for n in meta.get("signatures", {}).get("serving_default", []) if n not in ("waveform", "num_samples")]
    if needs:
        print(f"keras_ser-predict: {path} also needs {', '.join(needs)} (words and their timings); "
              "call the SavedModel with them (docs/serving.md, notebooks/fg_cme.ipynb)", file=sys.stderr)
        return 2
    import numpy as np
    import tensorflow as tf

    fn = tf.saved_model.load(path).signatures["serving_default"]
    status = 0
    for audio in args.audio:
        try:
            wav = load_audio(audio)
        except KerasSerError as exc:
            print(f"keras_ser-predict: {exc}", file=sys.stderr)
            status = 2
            continue
        out = fn(waveform=tf.constant(wav[None]), num_samples=tf.constant([len(wav)], tf.int32))
        rec = {"file": audio}
        if "emotion" in out and meta.get("label_names"):
            p = out["emotion"].numpy()[0]
            rec["emotion"] = meta["label_names"][int(np.argmax(p))]
            # Existence models (MLEE) give independent per-emotion probabilities.
            key = "existence" if meta.get("emotion_head") == "existence" else "probabilities"
            rec[key] = {n: round(float(v), 4) for n, v in zip(meta["label_names"], p)}
        for k, v in out.items():
            if k not in ("emotion", "num_frames", "attention") and v.shape.rank <= 2:
                rec[k] = np.round(v.numpy()[0], 4).tolist()
        if args.json:
            print(json.dumps(rec))
        else:
            probs = rec.get("probabilities", rec.get("existence", {}))
            extra = f"\tstrength={rec['strength']:.3f}" if "strength" in rec else ""
            print(f"{audio}\t{rec.get('emotion', '')}\t" + " ".join(f"{k}={v:.3f}" for k, v in probs.items()) + extra)
    return status


if __name__ == "__main__":
    sys.exit(main())
