"""Clustering data readers: IDX (gzip and plain), npz, sklearn digits, and their errors."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from pipeline.data.clustering import load_clustering_dataset, n_clusters, read_idx
from pipeline.io import BadInput

IMAGES = np.array([[[0, 255], [51, 102]], [[255, 255], [0, 0]], [[1, 2], [3, 4]]], np.uint8)
LABELS = np.array([3, 1, 3], np.uint8)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_pair(tmp_path, images=IMAGES, labels=LABELS, compress=False):
    wrap = gzip.compress if compress else (lambda b: b)
    suffix = ".gz" if compress else ""
    (tmp_path / f"img{suffix}").write_bytes(wrap(idx_bytes(images)))
    (tmp_path / f"lab{suffix}").write_bytes(wrap(idx_bytes(labels)))
    return {"format": "idx", "images": f"img{suffix}", "labels": f"lab{suffix}"}


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_scaled_and_flattened(tmp_path, compress):
    x, y = load_clustering_dataset("t", write_pair(tmp_path, compress=compress), tmp_path)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape == (3, 4)
    np.testing.assert_allclose(x[0], [0.0, 1.0, 0.2, 0.4], rtol=1e-6)
    assert y.tolist() == [3, 1, 3]


def test_idx_reads_big_endian_multibyte_types(tmp_path):
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints"
    path.write_bytes(idx_bytes(values, type_code=0x0C))
    assert read_idx(path).tolist() == [1, -2, 70000]


def test_idx_bad_magic(tmp_path):
    entry = write_pair(tmp_path)
    (tmp_path / "img").write_bytes(b"\x08\x03\x00\x00" + idx_bytes(IMAGES)[4:])
    with pytest.raises(ValueError, match=r"img: bad magic number"):
        load_clustering_dataset("t", entry, tmp_path)


def test_idx_truncated_data(tmp_path):
    entry = write_pair(tmp_path, compress=True)
    (tmp_path / "img.gz").write_bytes(gzip.compress(idx_bytes(IMAGES)[:-3]))
    with pytest.raises(ValueError, match=r"img\.gz: truncated file.*need 12 data bytes, found 9"):
        load_clustering_dataset("t", entry, tmp_path)


def test_idx_truncated_gzip_stream(tmp_path):
    entry = write_pair(tmp_path, compress=True)
    data = gzip.compress(idx_bytes(IMAGES))
    (tmp_path / "img.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"img\.gz: corrupt gzip stream"):
        load_clustering_dataset("t", entry, tmp_path)


def test_idx_corrupt_gzip_stream(tmp_path):
    """Whole but garbled: zlib's own error becomes one line naming the file."""
    entry = write_pair(tmp_path, compress=True)
    data = bytearray(gzip.compress(idx_bytes(IMAGES)))
    data[12:20] = b"\xff" * 8  # inside the deflate stream, after the gzip header
    (tmp_path / "img.gz").write_bytes(bytes(data))
    with pytest.raises(BadInput, match=r"img\.gz: corrupt gzip stream"):
        load_clustering_dataset("t", entry, tmp_path)


def test_idx_count_mismatch(tmp_path):
    entry = write_pair(tmp_path, labels=LABELS[:2])
    with pytest.raises(ValueError, match=r"lab: 2 labels for 3 images.*count mismatch"):
        load_clustering_dataset("t", entry, tmp_path)


def test_sha256_verified_before_reading(tmp_path):
    entry = write_pair(tmp_path)
    good = hashlib.sha256((tmp_path / "img").read_bytes()).hexdigest()
    entry["sha256"] = {"images": good}
    assert load_clustering_dataset("t", entry, tmp_path)[0].shape == (3, 4)
    entry["sha256"] = {"images": "0" * 64}
    with pytest.raises(ValueError, match=rf"img: sha256 mismatch: expected 0{{64}}, actual {good}"):
        load_clustering_dataset("t", entry, tmp_path)


def test_missing_file_named(tmp_path):
    with pytest.raises(ValueError, match=r"nope.*file not found"):
        load_clustering_dataset("t", {"format": "idx", "images": "nope", "labels": "x"}, tmp_path)


def test_npz_flattened_as_stored(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(3, 2, 2)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 1]))
    xs, ys = load_clustering_dataset("t", {"format": "npz", "path": "d.npz"}, tmp_path)
    assert xs.dtype == np.float32 and xs.shape == (3, 4) and xs[2, 3] == 11.0
    assert ys.dtype == np.int64 and ys.tolist() == [0, 1, 1]


def test_npz_missing_array(tmp_path):
    np.savez(tmp_path / "d.npz", features=np.zeros((2, 2)), y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"d\.npz: missing array 'x'"):
        load_clustering_dataset("t", {"format": "npz", "path": "d.npz"}, tmp_path)


def test_sklearn_digits_scaled_to_unit_interval(tmp_path):
    x, y = load_clustering_dataset("digits", {"format": "sklearn_digits"}, tmp_path)
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert n_clusters({"format": "sklearn_digits"}, y) == 10
    assert n_clusters({"format": "sklearn_digits", "n_clusters": 12}, y) == 12


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        load_clustering_dataset("t", {"format": "csv"}, tmp_path)
