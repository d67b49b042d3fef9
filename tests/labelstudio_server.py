"""A real Label Studio on 127.0.0.1 for tests marked ``labelstudio``.

One data dir is initialised per session (migrations, admin user, legacy API token: ~35 s)
and copied for each server (~4 s to healthy). The server runs with a clean environment,
HOME inside the temp dir, a port picked here and polled on ``/health``, and is stopped
with SIGTERM. Skipped, with the reason, when no server binary is installed
(``.ci/install-label-studio.sh`` or ``LABEL_STUDIO_BIN``).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotation import server

BINARY = server.find_binary()
requires_server = pytest.mark.skipif(
    BINARY is None, reason="no Label Studio server binary: run .ci/install-label-studio.sh "
                           "(creates .venv-ls) or set LABEL_STUDIO_BIN")
USERNAME = "admin@example.com"
START_TIMEOUT_S = 180


@dataclass
class LiveServer:
    url: str
    api_key: str
    data_dir: Path
    log: Path


@dataclass
class Template:
    data_dir: Path
    password: str
    api_key: str


@pytest.fixture(scope="session")
def labelstudio_template(tmp_path_factory) -> Template:
    data_dir = tmp_path_factory.mktemp("labelstudio-template") / "data"
    password, token = secrets.token_hex(12), secrets.token_hex(20)
    env = server.server_env(data_dir, USERNAME, password, token)
    server.init_data_dir(BINARY, env, data_dir.parent / "init.log", START_TIMEOUT_S)
    return Template(data_dir, password, token)


def start_copy(template: Template, base: Path) -> Iterator[LiveServer]:
    data_dir = base / "data"
    shutil.copytree(template.data_dir, data_dir)
    env = server.server_env(data_dir, USERNAME, template.password, template.api_key)
    port = server.free_port("127.0.0.1")
    url, log = f"http://127.0.0.1:{port}", base / "server.log"
    proc = server.start(BINARY, env, "127.0.0.1", port, log)
    try:
        server.wait_healthy(proc, url, START_TIMEOUT_S, log)
        yield LiveServer(url, template.api_key, data_dir, log)
    finally:
        server.stop(proc, 20)


@pytest.fixture(scope="module")
def labelstudio(labelstudio_template, tmp_path_factory) -> Iterator[LiveServer]:
    """One server per test module; tests keep apart by project title."""
    yield from start_copy(labelstudio_template, tmp_path_factory.mktemp("labelstudio"))
