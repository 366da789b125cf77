"""keras_ser-predict EXPORT_DIR AUDIO [AUDIO ...]: run an exported model on local audio files.

EXPORT_DIR is a version folder (`.../export/mlee/1`) or the model folder (latest version used).
Prints one line per file: the predicted label and the probabilities (or the heads' values).

Models with word inputs (FG_CME and its text baselines) need each file's words, in the order of
the audio files, from one of:
    --words A.json B.json ...        word timestamps as ASR tools write them (`words` or
                                     `segments[].words` with word/start/end in seconds)
    --transcript "text a" "text b"   transcripts only: the words are spread over the voiced
                                     region (APPROXIMATE timings, as in training without timings)

The export of the openSMILE reference (`system: functionals`) takes functionals, not a waveform:
keras_ser-predict extracts the export's openSMILE set from each file in TensorFlow-free worker
processes, as training did (undefined values as 0), and checks them against the export's
functional names. An export with `normalization: speaker` z-scores each functional over the
files given, taken as one speaker's audio, as its training did per speaker (so give several).
A late fusion of a network and the reference (`keras_ser-fuse`) gets both the waveform and
the functionals.
"""

import argparse
import json
import os
import sys

from keras_ser.audio.io import SAMPLE_RATE, load_audio
from keras_ser.corpora.alignments import approximate_alignment, read_word_json
from keras_ser.errors import AlignmentError, ExportError, KerasSerError
from keras_ser.serving.export import load_signature, open_export
from keras_ser.text import Vocabulary


def word_inputs(meta, waveform, words=None, transcript=None, needs=(), source="audio"):
    """The word inputs of an export with word inputs, for one utterance: from a word-timestamp
    JSON file (`words`) or a transcript with approximate timings. Words are looked up in the
    export's vocabulary (`keras_ser.json`); unknown words get the OOV id."""
    import tensorflow as tf

    if "vocabulary" not in meta:
        raise AlignmentError("the export's keras_ser.json has no vocabulary")
    if words:
        if not os.path.isfile(words):
            raise AlignmentError(f"{words}: no such file")
        aligned = read_word_json(words)
        if not aligned:
            raise AlignmentError(f"{words}: no words")
        duration = len(waveform) / SAMPLE_RATE
        late = [w for w, _, e in aligned if e > duration + 0.05]
        if late:
            raise AlignmentError(f"{words}: word {late[0]!r} ends after the audio ({duration:.2f} s)")
    elif not transcript.strip():
        raise AlignmentError(f"{source}: empty --transcript")
    else:
        aligned = approximate_alignment(transcript, waveform, SAMPLE_RATE)
    vocab = Vocabulary(meta["vocabulary"][2:])
    x = {"word_ids": tf.constant(vocab.ids([w for w, _, _ in aligned])[None], tf.int32),
         "word_starts": tf.constant([[s for _, s, _ in aligned]], tf.float32),
         "word_ends": tf.constant([[e for _, _, e in aligned]], tf.float32),
         "num_words": tf.constant([len(aligned)], tf.int32)}
    return {k: v for k, v in x.items() if k in needs}


def speaker_statistics(meta, files):
    """`(mean, std)` float32 `(dim,)` of the export's features over `files`, taken as one
    speaker's audio (an export of a run with `data.normalization: speaker` needs them)."""
    from keras_ser.audio import compute_features
    from keras_ser.audio.normalization import FeatureStats

    stats = None
    for f in files:
        wav = load_audio(f)
        feats, n = compute_features(wav[None], None, meta["frontend"])
        frames = feats.numpy()[0, : int(n[0])]
        stats = FeatureStats.from_features(frames) if stats is None else stats.update(frames)
    return stats.mean.astype("float32"), stats.std(1e-3).astype("float32")


def functionals_by_speaker(meta):
    """Whether the export z-scores its functionals per speaker (a fused export says so in
    `feature_normalization`, the reference's own export in `normalization`)."""
    return meta.get("feature_normalization", meta.get("normalization")) == "speaker"


def functionals_inputs(meta, files):
    """`(features (N, D) float32, errors {file: why})` for an export that takes openSMILE
    functionals: extracted as in training (TensorFlow-free workers, NaN as 0), checked against
    the export's names, and z-scored over the files that gave functionals when the export
    normalises by speaker. A failed file is a row of NaN (the export's status 1)."""
    import numpy as np

    from keras_ser.training.utterance_features import speaker_standardised
    from tfrecords_tools.opensmile_features import ExtractionError, extract_functionals

    try:  # a bad file's reason comes back from the workers (the same checks as for the waveform)
        X, names, errors = extract_functionals(files, meta["feature_set"], num_workers=min(2, len(files)),
                                               non_finite="zero")
    except ExtractionError as exc:  # no file gave functionals: each is named in the loop
        return np.full((len(files), len(meta.get("feature_names") or [])), np.nan, np.float32), exc.errors
    want = meta.get("feature_names")
    if want is not None and list(names) != list(want):
        diff = next((i for i, (a, b) in enumerate(zip(names, want)) if a != b), min(len(names), len(want)))
        raise ExportError(f"the export takes {len(want)} {meta['feature_set']} functionals, this openSMILE gives "
                          f"{len(names)}; they first differ at #{diff} "
                          f"({want[diff] if diff < len(want) else '-'} / {names[diff] if diff < len(names) else '-'}): "
                          "extract with the openSMILE version the export was trained with")
    ok = np.isfinite(X).all(1)
    if functionals_by_speaker(meta):
        if ok.sum() < 2:
            raise KerasSerError("the export normalises each functional by its speaker's statistics: give several "
                                f"files of one speaker ({int(ok.sum())} gave functionals)")
        X[ok] = speaker_standardised(X[ok], np.zeros(int(ok.sum()), int))
    return X.astype(np.float32), errors


def report(audio, out, meta, as_json):
    """Print one file's outputs (`out`: the signature's outputs, numpy, batch of one)."""
    import numpy as np

    rec = {"file": audio}
    if "emotion" in out and meta.get("label_names"):
        p = out["emotion"][0]
        rec["emotion"] = meta["label_names"][int(np.argmax(p))]
        # Existence models (MLEE) give independent per-emotion probabilities.
        key = "existence" if meta.get("emotion_head") == "existence" else "probabilities"
        rec[key] = {n: round(float(v), 4) for n, v in zip(meta["label_names"], p)}
    for k, v in out.items():
        if k not in ("emotion", "num_frames", "attention", "status") and v.ndim <= 2:
            rec[k] = np.round(v[0], 4).tolist()
    if as_json:
        print(json.dumps(rec))
    else:
        probs = rec.get("probabilities", rec.get("existence", {}))
        extra = f"\tstrength={rec['strength']:.3f}" if "strength" in rec else ""
        print(f"{audio}\t{rec.get('emotion', '')}\t" + " ".join(f"{k}={v:.3f}" for k, v in probs.items()) + extra)


def not_scored(audio, out, meta):
    """The reason the graph's `status` gives for not scoring `audio`, or None."""
    code = int(out["status"][0]) if "status" in out else 0
    return meta.get("status_codes", {}).get(str(code), code) if code else None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras_ser-predict", description=__doc__.splitlines()[0])
    parser.add_argument("export_dir")
    parser.add_argument("audio", nargs="+")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    words = parser.add_mutually_exclusive_group()
    words.add_argument("--words", nargs="+", metavar="JSON", help="word timestamps, one file per audio file")
    words.add_argument("--transcript", nargs="+", metavar="TEXT",
                       help="one transcript per audio file (approximate word timings)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        path, meta = open_export(args.export_dir)
    except ExportError as exc:
        print(f"keras_ser-predict: {exc}", file=sys.stderr)
        return 2
    takes = meta.get("signatures", {}).get("serving_default", [])
    if "feature_set" in meta and "waveform" not in takes:  # the reference: openSMILE functionals in, no words
        if args.words or args.transcript:
            print(f"keras_ser-predict: {path} takes no words (its input: {meta['feature_set']} functionals of the audio)",
                  file=sys.stderr)
            return 2
    needs = [n for n in takes if n not in ("waveform", "num_samples", "speaker_mean", "speaker_std", "features")]
    from_audio = "waveform" in takes  # else the reference's export: functionals only
    per_speaker = from_audio and meta.get("normalization") == "speaker"
    given = args.words or args.transcript
    if needs and not given:
        print(f"keras_ser-predict: {path} also needs {', '.join(needs)} (words and their timings): "
              "give --words JSON ... or --transcript TEXT ..., one per audio file", file=sys.stderr)
        return 2
    if given and not needs:
        print(f"keras_ser-predict: {path} takes no words (its inputs: waveform, num_samples)", file=sys.stderr)
        return 2
    if given and len(given) != len(args.audio):
        print(f"keras_ser-predict: {len(args.audio)} audio files but {len(given)} "
              f"{'--words files' if args.words else '--transcript texts'}: give one per audio file", file=sys.stderr)
        return 2
    if args.transcript:
        print("keras_ser-predict: word timings from --transcript are APPROXIMATE (spread over the voiced region)",
              file=sys.stderr)
    import tensorflow as tf

    try:
        fn = load_signature(path)
    except ExportError as exc:
        print(f"keras_ser-predict: {exc}", file=sys.stderr)
        return 2
    status = 0
    functionals, failed = None, {}
    if "features" in takes:  # the reference's export, or a late fusion with it (keras_ser-fuse)
        try:
            functionals, failed = functionals_inputs(meta, args.audio)
        except KerasSerError as exc:
            print(f"keras_ser-predict: {exc}", file=sys.stderr)
            return 2
        if functionals_by_speaker(meta):
            print(f"keras_ser-predict: {path} normalises the functionals by speaker: statistics from the files given, "
                  "taken as one speaker's audio", file=sys.stderr)
    speaker = None
    if per_speaker:
        try:
            speaker = speaker_statistics(meta, args.audio)
        except KerasSerError as exc:
            print(f"keras_ser-predict: {exc}", file=sys.stderr)
            return 2
        print(f"keras_ser-predict: {path} normalises by speaker: statistics from the {len(args.audio)} files given, "
              "taken as one speaker's audio", file=sys.stderr)
    for i, audio in enumerate(args.audio):
        if audio in failed:
            print(f"keras_ser-predict: {audio}: {failed[audio]}", file=sys.stderr)
            status = 2
            continue
        try:
            inputs = {}
            if from_audio:
                wav = load_audio(audio)
                inputs = {"waveform": tf.constant(wav[None]), "num_samples": tf.constant([len(wav)], tf.int32)}
            if functionals is not None:
                inputs["features"] = tf.constant(functionals[i:i + 1])
            if speaker is not None:
                inputs.update(speaker_mean=tf.constant(speaker[0][None]), speaker_std=tf.constant(speaker[1][None]))
            if needs:
                inputs.update(word_inputs(meta, wav, words=args.words and args.words[i],
                                          transcript=args.transcript and args.transcript[i], needs=needs,
                                          source=audio))
        except KerasSerError as exc:
            print(f"keras_ser-predict: {exc}", file=sys.stderr)
            status = 2
            continue
        out = {k: v.numpy() for k, v in fn(**inputs).items()}
        why = not_scored(audio, out, meta)
        if why:  # load_audio's checks make this rare; the graph's own say why
            print(f"keras_ser-predict: {audio}: not scored: {why}", file=sys.stderr)
            status = 2
            continue
        report(audio, out, meta, args.json)
    return status


if __name__ == "__main__":
    sys.exit(main())
