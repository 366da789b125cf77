"""Atomic writes shared by runs, benchmarks and experiments (write a temporary name, then rename)."""

import json
import os


def write_json(obj, path, indent=1):
    """Write `obj` as JSON to `path` atomically; an interrupted write leaves no partial file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=indent)
    os.replace(tmp, path)
    return path


def write_csv(frame, path, **kwargs):
    """Write a pandas DataFrame as CSV to `path` atomically (`kwargs` go to `to_csv`)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    frame.to_csv(tmp, **kwargs)
    os.replace(tmp, path)
    return path


def read_json(path):
    """The JSON document in `path` (the file is closed before returning)."""
    with open(path) as f:
        return json.load(f)


def report(result, out=None):
    """Print a benchmark's or experiment's result as JSON and, with `out`, keep it there."""
    print(json.dumps(result, indent=1))
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        write_json(result, out)


def save_figure(fig, path, dpi=100):
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp-{os.getpid()}{ext}"
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return path
