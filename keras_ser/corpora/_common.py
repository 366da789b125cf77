"""Helpers shared by the corpus loaders."""

import os

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def walk_audio(root, skip, extensions=AUDIO_EXTENSIONS):
    """Yield audio files below `root` in sorted order; report other files that look like audio."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: corpus folder does not exist")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            ext = os.path.splitext(name)[1].lower()
            if ext in extensions:
                yield path
            elif ext in (".mp3", ".m4a", ".aac", ".wma", ".aif", ".aiff", ".pcm", ".raw"):
                skip(path, f"audio format {ext} is not supported (convert to WAV or FLAC)")
