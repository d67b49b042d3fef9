"""Clustering data readers: IDX (gzip and plain), npz, sklearn digits, and their errors."""

import gzip
import hashlib
import io
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


# --- what reads fine but k-means, the autoencoder or the metrics would reject (issue #30)

def npz_entry(tmp_path, x, y, **entry):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return {"format": "npz", "path": "d.npz", **entry}


@pytest.mark.parametrize("x, y, problem", [
    (np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), [0, 1, 0],
     r"d\.npz: row 1, feature 0: nan is not a finite float32 number \(1 such values\)"),
    (np.array([[0.0, np.inf], [1.0, -np.inf], [3.0, 4.0]]), [0, 1, 0],
     r"row 0, feature 1: inf is not a finite float32 number \(2 such values\)"),
    (np.array([[0.0, 1e300], [1.0, 2.0], [3.0, 4.0]]), [0, 1, 0],  # float64 beyond float32
     r"row 0, feature 1: 1e\+300 is not a finite float32 number"),
    (np.zeros((0, 4)), np.zeros(0, np.int64), r"d\.npz: no samples to cluster \(features of "
                                              r"shape \(0, 4\)\)"),
    (np.zeros((3, 0)), [0, 1, 0], r"no samples to cluster \(features of shape \(3, 0\)\)"),
    (np.full((3, 2), 0.5), [0, 1, 0], r"d\.npz: all 3 rows are the same: nothing to cluster"),
    (IMAGES, [0, -1, 0], r"d\.npz: row 1: label -1 is not a class number"),
    (IMAGES, np.array([0, 2**63, 1], np.uint64), r"row 1: label 9223372036854775808 is not"),
    (IMAGES, [3, 3, 3], r"d\.npz: every label is 3: one class gives one cluster; declare "
                        r"n_clusters:"),
    (np.array([["a", "b"]] * 3), [0, 1, 0], r"d\.npz: features 'x' must be numbers, got <U1"),
])
def test_data_a_library_would_reject_is_refused_naming_file_row_and_value(tmp_path, x, y,
                                                                         problem):
    with pytest.raises(BadInput, match=problem):
        load_clustering_dataset("t", npz_entry(tmp_path, x, np.asarray(y)), tmp_path)


def test_declared_clusters_must_not_outnumber_the_samples(tmp_path):
    entry = npz_entry(tmp_path, IMAGES, np.array([3, 3, 3]), n_clusters=2)
    assert load_clustering_dataset("t", entry, tmp_path)[0].shape == (3, 4)  # declared: fine
    entry["n_clusters"] = 5
    with pytest.raises(BadInput, match=r"d\.npz: 3 samples for 5 clusters: k-means needs"):
        load_clustering_dataset("t", entry, tmp_path)


def npz_bytes(compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, x=IMAGES, y=LABELS)
    return buf.getvalue()


def with_method(npz: bytes, method: int) -> bytes:
    """The first member's compression method, as the zip's central directory records it."""
    at = npz.index(b"PK\x01\x02") + 10
    return npz[:at] + struct.pack("<H", method) + npz[at + 2:]


@pytest.mark.parametrize("damaged", [
    npz_bytes().replace(b"(3, 2, 2)", b"(3, 2, 9)"),  # a member's own header
    npz_bytes(compressed=True)[:60] + b"\xff" * 8 + npz_bytes(compressed=True)[68:],
    npz_bytes()[:len(npz_bytes()) // 2],  # cut short: no central directory
    npz_bytes()[:30] + b"\xff\xff" + npz_bytes()[32:],  # a member's name
    with_method(npz_bytes(), 99),  # a compression method zipfile does not know
], ids=["member-header", "deflate-stream", "truncated", "member-name", "compression-method"])
def test_a_damaged_npz_names_the_file(tmp_path, damaged):
    """Found by the fuzz test: zipfile's BadZipFile (CRC, directory), NotImplementedError (a
    compression method), EOFError and zlib.error from reading a member escaped as tracebacks
    without the file's name."""
    (tmp_path / "d.npz").write_bytes(damaged)
    with pytest.raises(BadInput, match=r"d\.npz: not a readable npz archive"):
        load_clustering_dataset("t", {"format": "npz", "path": "d.npz"}, tmp_path)


def test_an_npy_file_in_place_of_an_npz_is_named(tmp_path):
    """Found by the fuzz test (a damaged npz whose first bytes were gone began with its
    x.npy member): np.load returned an array, and `with` raised a TypeError."""
    npy = io.BytesIO()
    np.save(npy, IMAGES)
    (tmp_path / "d.npz").write_bytes(npy.getvalue())
    with pytest.raises(BadInput, match=r"d\.npz: one \.npy array, not an npz archive"):
        load_clustering_dataset("t", {"format": "npz", "path": "d.npz"}, tmp_path)


def test_idx_dims_whose_product_overflows_int64_are_a_truncated_file(tmp_path):
    """65536**4 elements: np.prod wrapped to 0, so an IDX file with no data 'matched' and
    reshape failed with numpy's own ValueError."""
    path = tmp_path / "huge"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">4I", *[65536] * 4))
    with pytest.raises(BadInput, match=r"huge: truncated file: dims \(65536, 65536, 65536, "
                                       r"65536\) need 18446744073709551616 data bytes, found 0"):
        read_idx(path)
