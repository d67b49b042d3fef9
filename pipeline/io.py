"""Durable, atomic writers: a killed job, or a crashed machine, never leaves a file that
looks finished, and a failed write keeps the earlier file.

Each file is written under a temporary name beside its destination (``.<name>.<random>.tmp``),
flushed to disk (fsync), renamed over the destination, and the directory entry flushed too.
A job killed outright leaves only such temporaries; ``remove_leftovers`` deletes them at the
next workflow start.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


class BadInput(ValueError):
    """Input the pipeline cannot use (a file, a download, a Label Studio export); the message
    names the file or server, the record and the problem. Raised by library code (never
    SystemExit) and printed as one line by the CLIs."""


LEFTOVER = ".*.tmp"  # what atomic_path leaves behind when its process is killed
# The disk refused the bytes: file too large (ulimit -f), disk full, quota, I/O, read-only.
WRITE_FAILURES = {errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path next to ``path``; make it durable and rename it over ``path`` only
    if the block succeeds. A failed write (disk full, file-size limit) names ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno not in WRITE_FAILURES:
            raise
        raise OSError(e.errno, f"{path}: could not write ({e.strerror}); "
                               "an earlier version of it, if any, is kept") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_leftovers(roots: list[str | os.PathLike]) -> list[Path]:
    """Delete the temporaries of writes that were killed before their rename."""
    removed = []
    for root in map(Path, roots):
        for leftover in root.rglob(LEFTOVER) if root.is_dir() else []:
            if leftover.is_file():
                leftover.unlink()
                removed.append(leftover)
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_bytes(path, buf.getvalue())


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save into memory first, so the bytes on disk depend only on ``obj``."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
