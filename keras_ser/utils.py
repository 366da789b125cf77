"""Atomic writes shared by the whole package (write a temporary name, then rename), and small
JSON/report helpers. Imports nothing heavier than the standard library.

Every file or folder keras_ser writes goes through `atomic_path`: an interrupted write (an
exception, SIGKILL, a full disk) never leaves a file under the final name that looks complete,
and the temporary names carry the writer's process id, so that `remove_stale_tmp` can tell a
dead writer's leftovers from a live writer's work in progress.
"""

import contextlib
import json
import os
import re
import shutil

# `<name>.tmp-<pid>` or `<stem>.tmp-<pid><ext>` (see `atomic_path`).
_TMP = re.compile(r"\.tmp-(\d+)(\.[^/]*)?$")


def tmp_name(path, keep_suffix=False):
    """The temporary name `atomic_path` writes `path` under."""
    if keep_suffix:
        root, ext = os.path.splitext(path)
        return f"{root}.tmp-{os.getpid()}{ext}"
    return f"{path}.tmp-{os.getpid()}"


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path, keep_suffix=False):
    """Yield a temporary path beside `path` to write a file or a folder to; when the block ends
    without an error it is renamed onto `path` (an existing folder there is replaced), and when
    it raises it is removed.

    Args:
        path: str. The final path.
        keep_suffix: bool. Put the marker before the extension (`best.tmp-<pid>.keras`), for
            writers that insist on one (Keras `.keras`, NumPy `.npz`, matplotlib's format
            guess). Otherwise `<path>.tmp-<pid>`, which no glob on the extension matches
            (`*.tfrecord` never picks up a shard being written).

    >>> with atomic_path("/tmp/x.json") as tmp:  # doctest: +SKIP
    ...     open(tmp, "w").write("{}")
    """
    tmp = tmp_name(path, keep_suffix)
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if os.path.isdir(tmp) and os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(tmp, path)


def pid_alive(pid):
    """Whether a process `pid` exists on this machine."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def remove_stale_tmp(folder, recursive=True):
    """Remove the temporary files and folders of `atomic_path` writers that are no longer
    running (a killed run's half-written shards, checkpoints or exports); returns their paths.
    A live writer's temporary files are left alone."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for root, dirs, files in os.walk(folder):
        for name in list(dirs) + files:
            m = _TMP.search(name)
            if m and not pid_alive(m.group(1)):
                _remove(os.path.join(root, name))
                removed.append(os.path.join(root, name))
                if name in dirs:
                    dirs.remove(name)
        if not recursive:
            break
    return removed


def die_with_parent():
    """Make this (worker) process end when its parent does: a killed run must not leave its
    worker processes (and through them multiprocessing's resource tracker) running. On Linux
    the kernel sends SIGTERM (prctl PR_SET_PDEATHSIG); elsewhere a daemon thread watches the
    parent. Meant as, or called from, a process pool's `initializer`."""
    import signal
    import sys

    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before the call
                os._exit(1)
            return
        except OSError:
            pass
    die_with(parent, interval=1.0)


_WATCHED = set()


@contextlib.contextmanager
def spawn_pool(num_workers, initializer=None, initargs=()):
    """A spawn-context `ProcessPoolExecutor` whose workers do not re-run the parent's main module.

    Spawn imports the parent's `__main__` file in every worker (as `__mp_main__`), for functions
    defined there. The pools here run functions of importable modules only, and a user's script
    whose imports load TensorFlow would load it into every worker: slow, and fatal for the
    openSMILE workers (`tfrecords_tools.opensmile_features`). So `__main__` is an empty module
    while the pool lives (its workers are started by its first tasks, inside the block)."""
    import concurrent.futures
    import multiprocessing
    import sys
    import types

    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        with concurrent.futures.ProcessPoolExecutor(max(1, int(num_workers)), mp_context=multiprocessing.get_context(
                "spawn"), initializer=initializer, initargs=initargs) as pool:
            yield pool
    finally:
        sys.modules["__main__"] = main


def die_with(pid, interval=0.5):
    """End this process (a worker started by another runner's machinery, whose parent is not the
    process it works for) as soon as process `pid` is gone; a daemon thread checks every
    `interval` seconds. Once per process and pid."""
    import threading
    import time

    if pid in _WATCHED or pid == os.getpid():
        return
    _WATCHED.add(pid)

    def watch():
        while pid_alive(pid):
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def file_checksum(path):
    """BLAKE2b (128 bits) of a file's bytes, hex: fast enough to check a gigabyte in seconds."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_home():
    """Where keras_ser keeps what it generates or caches: `$KERAS_SER_DATA`, else `~/.cache/keras_ser`."""
    return os.environ.get("KERAS_SER_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "keras_ser")


_DIGESTS = {}  # this process's memo: path -> (size, mtime_ns, digest)


def file_digests(paths, memo_path=None):
    """`file_checksum` of each path (None for a file that cannot be read), memoised by each
    file's size and modification time, in this process and in the JSON file `memo_path`
    (default `data_home()/file_digests.json`; "" for none). A file touched, or copied with new
    times, is read again once, and keeps its digest when its bytes are the same. Entries of
    files that no longer exist are dropped from the memo when it is written."""
    if memo_path is None:
        memo_path = os.path.join(data_home(), "file_digests.json")
    if memo_path and not _DIGESTS and os.path.exists(memo_path):
        try:
            _DIGESTS.update({k: tuple(v) for k, v in read_json(memo_path).items()})
        except (OSError, ValueError, TypeError):
            pass  # a damaged memo is only a cache: rebuilt below
    out, changed = [], False
    for p in map(os.fspath, paths):
        try:
            st = os.stat(p)
            known = _DIGESTS.get(p)
            if known is None or tuple(known[:2]) != (st.st_size, st.st_mtime_ns):
                _DIGESTS[p], changed = (st.st_size, st.st_mtime_ns, file_checksum(p)), True
            out.append(_DIGESTS[p][2])
        except OSError:
            out.append(None)
    if changed and memo_path:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(memo_path)), exist_ok=True)
            write_json({k: list(v) for k, v in _DIGESTS.items() if os.path.exists(k)}, memo_path)
        except OSError:
            pass  # read-only data home: the digests are recomputed next time
    return out


def write_text(text, path):
    """Write a string to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return path


def write_json(obj, path, indent=1):
    """Write `obj` as JSON to `path` atomically; an interrupted write leaves no partial file."""
    return write_text(json.dumps(obj, indent=indent), path)


def write_csv(frame, path, **kwargs):
    """Write a pandas DataFrame as CSV to `path` atomically (`kwargs` go to `to_csv`)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
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
    """Save a matplotlib figure atomically. Figures made with `matplotlib.figure.Figure` need no
    backend and no pyplot state (keras_ser's plots are made so); one made with pyplot is closed."""
    with atomic_path(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=dpi)
    if getattr(fig, "number", None) is not None:  # a pyplot figure: release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
