"""Word alignments: Praat TextGrid reading and writing (long text format).

Alignments are lists of `(word, start_s, end_s)`; silences are not listed.
"""

import os
import re

from keras_ser.errors import AlignmentError

_SILENCE = {"", "sil", "sp", "<sil>", "<s>", "</s>", "#", "pau"}


def write_textgrid(path, words, duration, tier="words"):
    """Write word intervals as a Praat TextGrid (long format), filling gaps with empty intervals.

    Args:
        path: str. Output file (written atomically).
        words: list of `(word, start_s, end_s)`, sorted, non-overlapping.
        duration: float. Total duration in seconds.
        tier: str. Tier name. Defaults to "words".
    """
    intervals, t = [], 0.0
    for w, s, e in words:
        if s < t - 1e-9 or e <= s or e > duration + 1e-6:
            raise AlignmentError(f"{path}: interval {w!r} [{s}, {e}] overlaps, is empty or ends after {duration}")
        if s > t + 1e-9:
            intervals.append((t, s, ""))
        intervals.append((s, e, w))
        t = e
    if duration > t + 1e-9:
        intervals.append((t, duration, ""))
    lines = [
        'File type = "ooTextFile"', 'Object class = "TextGrid"', "",
        "xmin = 0", f"xmax = {duration!r}", "tiers? <exists>", "size = 1", "item []:",
        "    item [1]:", '        class = "IntervalTier"', f'        name = "{tier}"',
        "        xmin = 0", f"        xmax = {duration!r}", f"        intervals: size = {len(intervals)}",
    ]
    for i, (s, e, w) in enumerate(intervals, 1):
        text = w.replace('"', '""')
        lines += [f"        intervals [{i}]:", f"            xmin = {s!r}", f"            xmax = {e!r}",
                  f'            text = "{text}"']
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


_INTERVAL = re.compile(
    r'xmin\s*=\s*([-\d.eE+]+)\s*xmax\s*=\s*([-\d.eE+]+)\s*text\s*=\s*"((?:[^"]|"")*)"', re.S
)


def read_textgrid(path, tier="words"):
    """Read the word intervals of one tier of a TextGrid (long format) as `(word, start, end)`.

    Silence labels (empty, "sil", "sp", "<s>", ...) are dropped. Raises `AlignmentError` naming
    the file when the tier is missing or intervals are malformed.
    """
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        text = f.read()
    items = re.split(r"item\s*\[\d+\]\s*:", text)[1:]
    names = []
    for item in items:
        m = re.search(r'name\s*=\s*"([^"]*)"', item)
        names.append(m.group(1) if m else "")
        if m and m.group(1) == tier:
            out = []
            for s, e, w in _INTERVAL.findall(item):
                w = w.replace('""', '"').strip()
                if w.lower() not in _SILENCE:
                    out.append((w, float(s), float(e)))
            return out
    raise AlignmentError(f"{path}: no tier named {tier!r} (tiers: {names})")
