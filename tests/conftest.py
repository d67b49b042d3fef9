"""Shared fixtures: every test gets its own MLflow store, never the repository's."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline import config, numerics

ROOT = Path(__file__).resolve().parents[1]
# Before anything imports numpy or torch: tests run in the numeric mode of params.yaml.
_params = config.read_yaml(ROOT / config.PARAMS_FILE)
numerics.apply(_params["numerics"], _params["threads"])

import mlflow
import pytest


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow database, made once (migrations take seconds)."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                    mlflow_template: Path) -> str:
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    shutil.copy(mlflow_template, store)
    uri = f"sqlite:///{store}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return uri


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny DAG (tests/projects.py) run once: the end-to-end tests and the report's
    browser test read the same run."""
    from projects import sh, tiny_project

    root = tiny_project(tmp_path_factory.mktemp("project"))
    run = sh(root, "snakemake", "--cores", "2")
    (root / "snakemake.log").write_text(run.stderr)
    return root
