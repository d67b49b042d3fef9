"""Scratch projects for the end-to-end tests: a committed copy of the repository with a
tiny configuration, and a way to run commands in it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Small enough for a 2-core CI machine; the structure of the DAG stays the same.
TINY = {
    "seeds": [0, 1],
    "clustering": {"models": ["kmeans", "ae_kmeans"],
                   "autoencoder": {"epochs": 2, "layerwise_epochs": 0},
                   "evaluation": {"map_points": 300}},
    "tagging": {"models": ["bilstm_softmax"], "trainer": {"max_epochs": 1}},
}


def sh(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess:
    """Run a command in a project: its own MLflow store unless ``env`` names another."""
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
           "CI": "true", **(env or {})}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_repository(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_project(root: Path, overlay: dict | None = None) -> Path:
    """A committed copy of the repository with the TINY configuration (and ``overlay``, where
    null drops an entry) and its dvc.yaml."""
    copy_repository(root)
    params = config.deep_merge(config.read_yaml(root / "params.yaml"), TINY)
    params = config.drop_nulls(config.deep_merge(params, overlay or {}))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(root, "git", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny")
    sh(root, sys.executable, "-m", "pipeline", "dvc-yaml")
    sh(root, "git", "add", "dvc.yaml")
    sh(root, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "dvc.yaml")
    return root
