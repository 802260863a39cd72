"""Files the worker writes and the web reads: written through a temp file, fsync and rename, with a sha256."""
import hashlib
import os
import tempfile

import numpy as np

_digest_cache = {}


def file_digest(path):
    """The sha256 (hex) of the file at ``path``; cached while its size, mtime and inode stay the same, so the
    polled status costs one stat per file. Raises OSError when the file cannot be read."""
    stat = os.stat(path)
    key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    cached = _digest_cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    _digest_cache[path] = (key, digest.hexdigest())
    return digest.hexdigest()


def write_atomically(path, write):
    """Write a file by ``write(binary stream)`` into a temp file beside ``path``, fsync it and os.replace it
    there, so ``path`` is never half-written; returns the file's sha256. Raises OSError (no file left then)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return file_digest(path)


def save_scores(scores, path):
    """Save per-item scores (aligned to the pool's item ids; one row of K probabilities per item for K labels) as
    a float32 .npy at ``path`` via write_atomically;
    returns its sha256. Raises OSError."""
    array = np.ascontiguousarray(scores, dtype=np.float32)
    return write_atomically(path, lambda stream: np.save(stream, array, allow_pickle=False))


def load_scores(path, digest=None):
    """The float32 scores saved at ``path`` by save_scores (1-d: P(positive) per item; 2-d: the K labels'
    probabilities per item); with ``digest``, only if the file still has it.

    Raises OSError when the file cannot be read, ValueError when no path is given or the file is corrupt.
    """
    if not path:
        raise ValueError("no file recorded")
    name = os.path.basename(path)
    if digest is not None and file_digest(path) != digest:
        raise ValueError(f"{name} is corrupt (its checksum changed)")
    try:
        scores = np.load(path, allow_pickle=False)
    except (EOFError, ValueError) as error:
        raise ValueError(f"{name} is corrupt ({error})") from None
    if scores.ndim not in (1, 2) or scores.dtype != np.float32:
        raise ValueError(f"{name} is not a float32 score array of one or K columns")
    return scores


def remove_files(paths):
    """Remove the files ``paths``, those already gone included; returns the bytes freed. Raises OSError when a
    file is there but cannot be removed."""
    freed = 0
    for path in paths:
        try:
            size = os.path.getsize(path)
            os.remove(path)
        except FileNotFoundError:
            continue
        freed += size
    return freed
