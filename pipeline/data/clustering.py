"""Clustering data sets declared in params.yaml: sklearn digits, IDX (MNIST) files, npz.

Every reader returns ``x`` float32 of shape (n, d) and ``y`` int64 of shape (n,).
Image formats are scaled to [0, 1] by the format's maximum value, so the same
hyper-parameters behave alike on digits (max 16) and MNIST (max 255).
Bad input raises one ``BadInput`` naming the file (and the row) and what is wrong with it,
including data that reads fine but that k-means or the metrics would reject or mishandle.
"""

from __future__ import annotations

import gzip
import math
import zipfile
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
    expected = math.prod(dims) * dtype.itemsize  # exact: np.prod wraps around at 2**63
    found = len(raw) - header
    if found < expected:
        raise BadInput(
            f"{path}: truncated file: dims {dims} need {expected} data bytes, found {found}"
        )
    if found > expected:
        raise BadInput(f"{path}: {found - expected} trailing bytes after {dims} data")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


Samples = tuple[np.ndarray, np.ndarray, str, str]  # x, y, and the files they came from


def _rows(a: np.ndarray) -> np.ndarray:
    """One row per sample; unlike reshape(n, -1), also for no samples (refused later)."""
    return a.reshape(len(a), math.prod(a.shape[1:]))


def _load_idx(entry: Mapping[str, Any], root: Path) -> Samples:
    images_path, labels_path = _resolve(entry, "images", root), _resolve(entry, "labels", root)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype.kind == "u" and images.dtype.itemsize == 1:
        x = _rows(images).astype(np.float32) / 255.0
    elif images.dtype.kind == "f":
        x = _rows(images)
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
    return x, labels, str(images_path), str(labels_path)


# What reading a damaged npz raises: its zip directory, a member's deflate stream or CRC,
# a compression method or zip version byte (NotImplementedError), or the .npy header inside.
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, NotImplementedError,
              zipfile.BadZipFile, zlib.error)


def _load_npz(entry: Mapping[str, Any], root: Path) -> Samples:
    path = _resolve(entry, "path", root)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # np.load reads .npy files too
            raise BadInput(f"{path}: one .npy array, not an npz archive of arrays x and y")
        with loaded as archive:
            for key in ("x", "y"):
                if key not in archive.files:
                    raise BadInput(f"{path}: missing array '{key}' in npz (has {archive.files})")
            x, y = archive["x"], archive["y"]
    except BadInput:
        raise
    except NPZ_ERRORS as err:
        raise BadInput(f"{path}: not a readable npz archive ({err})") from err
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise BadInput(
            f"{path}: x of shape {x.shape} and y of shape {y.shape} do not "
            "describe the same samples (count mismatch)"
        )
    if y.dtype.kind not in "iu":
        raise BadInput(f"{path}: labels 'y' must be integers, got {y.dtype}")
    if x.dtype.kind not in "biuf":
        raise BadInput(f"{path}: features 'x' must be numbers, got {x.dtype}")
    return _rows(x), y, str(path), str(path)


def _load_sklearn_digits() -> Samples:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data / 16.0, digits.target, "sklearn digits", "sklearn digits"


def _checked(entry: Mapping[str, Any], x: np.ndarray, y: np.ndarray, x_file: str,
             y_file: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 features and int64 labels, or a BadInput naming the file, row and value:
    what reads fine but would stop k-means or the autoencoder deep inside a library
    (NaN, inf, a value beyond float32, no samples), leave nothing to cluster (every row the
    same), or be counted wrongly (a negative label, fewer samples than clusters)."""
    if x.size == 0:
        raise BadInput(f"{x_file}: no samples to cluster (features of shape {x.shape})")
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = x.astype(np.float32)
    bad = ~np.isfinite(x32)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise BadInput(f"{x_file}: row {row}, feature {col}: {x[row, col].item()!r} is not a "
                       f"finite float32 number ({int(bad.sum())} such values)")
    if (x32.max(axis=0) == x32.min(axis=0)).all():
        raise BadInput(f"{x_file}: all {len(x32)} rows are the same: nothing to cluster")
    negative = np.flatnonzero(y < 0)
    if negative.size or y.max() > np.iinfo(np.int64).max:
        row = negative[0] if negative.size else int(np.argmax(y))
        raise BadInput(f"{y_file}: row {row}: label {y[row].item()} is not a class number "
                       f"(0 to 2**63 - 1)")
    y64 = y.astype(np.int64)
    k = n_clusters(entry, y64)
    if k < 2:
        raise BadInput(f"{y_file}: every label is {y64[0]}: one class gives one cluster; "
                       "declare n_clusters: (2 or more) for this data set")
    if k > len(x32):
        raise BadInput(f"{x_file}: {len(x32)} samples for {k} clusters: k-means needs at "
                       "least one sample per cluster")
    return x32, y64


def load_clustering_dataset(
    name: str, entry: Mapping[str, Any], root: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read the dataset ``name`` declared by ``entry`` (paths relative to ``root``)."""
    fmt = entry["format"]
    if fmt == "sklearn_digits":
        return _checked(entry, *_load_sklearn_digits())
    if fmt == "idx":
        return _checked(entry, *_load_idx(entry, Path(root)))
    if fmt == "npz":
        return _checked(entry, *_load_npz(entry, Path(root)))
    raise BadInput(
        f"clustering dataset '{name}': unknown format '{fmt}' (expected sklearn_digits, idx or npz)"
    )


def n_clusters(entry: Mapping[str, Any], y: np.ndarray) -> int:
    """The declared number of clusters, else the number of distinct labels."""
    if "n_clusters" in entry:
        return int(entry["n_clusters"])
    return int(np.unique(y).size)
