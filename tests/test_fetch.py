import hashlib
import http.server
import threading
from functools import partial

import pytest

from pipeline.data.fetch import FetchError, fetch


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_over_http_verifies_and_is_done_once(http_root, tmp_path):
    www, base = http_root
    payload = b"\x1f\x8b fake gzip bytes" * 1000
    (www / "data.gz").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "raw" / "data.gz"
    fetch(f"{base}/data.gz", digest, dest)
    assert dest.read_bytes() == payload
    (www / "data.gz").unlink()  # a second fetch must not touch the network
    fetch(f"{base}/data.gz", digest, dest)
    assert dest.read_bytes() == payload


def test_sha256_mismatch_leaves_no_file_and_says_why(http_root, tmp_path):
    www, base = http_root
    (www / "data.gz").write_bytes(b"tampered")
    dest = tmp_path / "raw" / "data.gz"
    with pytest.raises(FetchError, match="sha256 mismatch: expected 0+, got"):
        fetch(f"{base}/data.gz", "0" * 64, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temp file left behind


def test_mismatch_keeps_a_previous_good_copy(http_root, tmp_path):
    www, base = http_root
    dest = tmp_path / "data.gz"
    dest.write_bytes(b"old")
    (www / "data.gz").write_bytes(b"new")
    with pytest.raises(FetchError):
        fetch(f"{base}/data.gz", hashlib.sha256(b"other").hexdigest(), dest)
    assert dest.read_bytes() == b"old"


def test_missing_file_and_file_urls(tmp_path, http_root):
    _, base = http_root
    with pytest.raises(FetchError, match="404"):
        fetch(f"{base}/nope.gz", "0" * 64, tmp_path / "x")
    src = tmp_path / "local.bin"
    src.write_bytes(b"abc")
    fetch(src.as_uri(), hashlib.sha256(b"abc").hexdigest(), tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == b"abc"
