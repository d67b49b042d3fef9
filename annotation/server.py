"""Start and stop a local Label Studio server: for annotators (`serve`) and for tests.

The server lives in its own virtualenv (``.ci/install-label-studio.sh``) because its pins
clash with the project's. It reads unprefixed variables (USERNAME, PORT, HOST, ...) and
writes into HOME, so it always runs with a clean, explicit environment.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BIN = REPO / ".venv-ls" / "bin" / "label-studio"


class ServerError(RuntimeError):
    """The server could not be found, started or reached."""


def find_binary() -> Path | None:
    """``LABEL_STUDIO_BIN``, else the ``.venv-ls`` install, else None."""
    configured = os.environ.get("LABEL_STUDIO_BIN")
    if configured:
        if not Path(configured).is_file():
            raise ServerError(f"LABEL_STUDIO_BIN={configured}: no such file")
        return Path(configured)
    return DEFAULT_BIN if DEFAULT_BIN.is_file() else None


def server_env(data_dir: Path, username: str, password: str, token: str) -> dict[str, str]:
    """Everything the server sees: nothing inherited, no outside services."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(data_dir / "home"),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }


def secret_file(path: Path, make: bool) -> str:
    """Read a one-line secret, or create it (mode 0600) with a random value."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    if not make:
        raise ServerError(f"{path}: missing")
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value


def free_port(host: str) -> int:
    """A port nothing listens on now (Label Studio would silently move off a busy one)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def init_data_dir(binary: Path, env: dict[str, str], log: Path, timeout_s: float) -> None:
    """Run migrations and create the admin user and token (``label-studio init``)."""
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        done = subprocess.run([str(binary), "init", "--quiet"], env=env, cwd=env["HOME"],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise ServerError(f"label-studio init failed (exit {done.returncode}); see {log}")


def start(binary: Path, env: dict[str, str], host: str, port: int, log: Path) -> subprocess.Popen:
    """Start the server in its own session so SIGTERM reaches exactly it."""
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(binary), "start", "--no-browser", "--internal-host", host, "-p", str(port)],
            env=env, cwd=env["HOME"], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float, log: Path) -> None:
    """Poll ``/health`` on exactly this URL until it answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"Label Studio exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise ServerError(f"Label Studio at {url} not healthy after {timeout_s} s; see {log}")


def stop(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
