"""Clustering data sets declared in params.yaml: sklearn digits, IDX (MNIST) files, npz.

Every reader returns ``x`` float32 of shape (n, d) and ``y`` int64 of shape (n,).
Image formats are scaled to [0, 1] by the format's maximum value, so the same
hyper-parameters behave alike on digits (max 16) and MNIST (max 255).
Bad input raises one ``ValueError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import BadInput, sha256_file

# IDX type codes (http://yann.lecun.com/exdb/mnist/): all multi-byte values are big-endian.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def _verify_sha256(entry: Mapping[str, Any], key: str, path: Path) -> None:
    expected = entry.get("sha256", {}).get(key)
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        raise BadInput(f"{path}: sha256 mismatch: expected {expected}, actual {actual}")


def _resolve(entry: Mapping[str, Any], key: str, root: Path) -> Path:
    path = root / entry[key]
    if not path.is_file():
        raise BadInput(f"{path}: file not found (clustering dataset key '{key}')")
    _verify_sha256(entry, key, path)
    return path


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzip or plain): 0x0000, type code, ndim, ndim big-endian uint32 dims."""
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise BadInput(f"{path}: corrupt gzip stream ({err})") from err
    if len(raw) < 4:
        raise BadInput(f"{path}: truncated file: {len(raw)} bytes, no IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise BadInput(f"{path}: bad magic number 0x{raw[:4].hex()} (not an IDX file)")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise BadInput(f"{path}: truncated file: header declares {ndim} dims")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise BadInput(
            f"{path}: truncated file: dims {dims} need {expected} data bytes, found {found}"
        )
    if found > expected:
        raise BadInput(f"{path}: {found - expected} trailing bytes after {dims} data")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _load_idx(entry: Mapping[str, Any], root: Path) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = _resolve(entry, "images", root), _resolve(entry, "labels", root)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype.kind == "u" and images.dtype.itemsize == 1:
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    elif images.dtype.kind == "f":
        x = images.reshape(len(images), -1).astype(np.float32)
    else:
        raise BadInput(
            f"{images_path}: images of IDX type {images.dtype} are not supported "
            "(expected unsigned byte or float)"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise BadInput(
            f"{labels_path}: labels must be a 1-d integer IDX array, "
            f"got shape {labels.shape} of {labels.dtype}"
        )
    if len(labels) != len(x):
        raise BadInput(
            f"{labels_path}: {len(labels)} labels for {len(x)} images "
            f"in {images_path} (count mismatch)"
        )
    return x, labels.astype(np.int64)


def _load_npz(entry: Mapping[str, Any], root: Path) -> tuple[np.ndarray, np.ndarray]:
    path = _resolve(entry, "path", root)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise BadInput(f"{path}: not a readable npz archive ({err})") from err
    with archive:
        for key in ("x", "y"):
            if key not in archive.files:
                raise BadInput(f"{path}: missing array '{key}' in npz (has {archive.files})")
        x, y = archive["x"], archive["y"]
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise BadInput(
            f"{path}: x of shape {x.shape} and y of shape {y.shape} do not "
            "describe the same samples (count mismatch)"
        )
    if y.dtype.kind not in "iu":
        raise BadInput(f"{path}: labels 'y' must be integers, got {y.dtype}")
    return x.reshape(len(x), -1).astype(np.float32), y.astype(np.int64)


def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def load_clustering_dataset(
    name: str, entry: Mapping[str, Any], root: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read the dataset ``name`` declared by ``entry`` (paths relative to ``root``)."""
    fmt = entry["format"]
    if fmt == "sklearn_digits":
        return _load_sklearn_digits()
    if fmt == "idx":
        return _load_idx(entry, Path(root))
    if fmt == "npz":
        return _load_npz(entry, Path(root))
    raise BadInput(
        f"clustering dataset '{name}': unknown format '{fmt}' (expected sklearn_digits, idx or npz)"
    )


def n_clusters(entry: Mapping[str, Any], y: np.ndarray) -> int:
    """The declared number of clusters, else the number of distinct labels."""
    if "n_clusters" in entry:
        return int(entry["n_clusters"])
    return int(np.unique(y).size)
