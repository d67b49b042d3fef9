"""Server failures without a Label Studio: down, hanging, 5xx. Bounded retries, clear
errors, no API key in any message, the previous snapshot untouched."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from annotation.client import Client, LabelStudioError, export_project

KEY = "do-not-leak-this-key-0123456789"
SERVER = {"retries": 2, "timeout_s": 1, "backoff_s": 0.05, "export_timeout_s": 5}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def answering_500():
    """A tiny HTTP server that answers 500 to everything: a real Label Studio cannot easily
    be made to fail that way, and this is all the client sees of a failing server."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            hits.append(self.path)
            body = b'{"detail": "Internal Server Error"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: the client must time out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def previous_snapshot(tmp_path):
    path = tmp_path / "snap.json"
    path.write_text("[]\n")
    return path


def test_server_down_is_a_clear_error_after_bounded_retries(tmp_path):
    out = previous_snapshot(tmp_path)
    start = time.monotonic()
    with pytest.raises(LabelStudioError) as err:
        export_project(f"http://127.0.0.1:{closed_port()}", KEY, "p", out, SERVER)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "failed after 3 attempts" in message and "cannot connect" in message
    assert KEY not in message and KEY not in repr(err.value.__context__)
    assert out.read_text() == "[]\n" and not out.with_name("snap.json.sha256").exists()


def test_timeout_is_a_clear_error(silent_server, tmp_path):
    out = previous_snapshot(tmp_path)
    start = time.monotonic()
    with pytest.raises(LabelStudioError, match="failed after 3 attempts: timed out") as err:
        export_project(silent_server, KEY, "p", out, SERVER)
    assert time.monotonic() - start < 3 * SERVER["timeout_s"] + 3
    assert KEY not in str(err.value)
    assert out.read_text() == "[]\n"


def test_5xx_is_retried_then_reported(answering_500, tmp_path):
    url, hits = answering_500
    out = previous_snapshot(tmp_path)
    with pytest.raises(LabelStudioError, match="failed after 3 attempts: HTTP 500") as err:
        export_project(url, KEY, "p", out, SERVER)
    assert len(hits) == 3  # one try + SERVER["retries"], no SDK-level retries on top
    assert KEY not in str(err.value)
    assert out.read_text() == "[]\n"


def test_missing_url_or_key_is_named():
    with pytest.raises(LabelStudioError, match="LABEL_STUDIO_URL"):
        Client("", KEY, SERVER)
    with pytest.raises(LabelStudioError, match="LABEL_STUDIO_API_KEY"):
        Client("http://127.0.0.1:1", "", SERVER)
