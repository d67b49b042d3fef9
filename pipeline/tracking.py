"""MLflow: one run per job, with everything an auditor needs to re-run it.

The embedded default store is ``sqlite:///mlflow.db`` with artifacts in ``mlartifacts/``
beside it (both in the repository, git-ignored); ``MLFLOW_TRACKING_URI`` points elsewhere. A job
that raises, or is stopped by SIGTERM/SIGINT, ends its run FAILED; a job killed outright
(SIGKILL, a lost node) is marked FAILED by ``reap_orphans`` at the next workflow start.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_URI = "sqlite:///mlflow.db"
ARTIFACT_ROOT = "mlartifacts"
EXPERIMENTS = ("clustering", "tagging", "annotation")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)


def store_problem(exc: BaseException) -> str | None:
    """The one line for an MLflow failure the user can fix (a run id the store does not
    hold, a tracking server that does not answer), naming the store; None for anything else,
    which is a bug and keeps its traceback."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import ConnectionError, Timeout

    if not isinstance(exc, MlflowException):
        return None
    causes, cause = [], exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return f"MLflow store {tracking_uri()}: {exc.message}"
    if any(isinstance(c, (ConnectionError, Timeout)) for c in causes):
        return f"MLflow store {tracking_uri()} does not answer: {exc.message}"
    return None


def _mlflow():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def experiment_id(name: str) -> str:
    """Get or create an experiment; artifacts of the embedded store stay in the repo."""
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):  # a local store keeps its artifacts beside the database
        location = (Path(uri.removeprefix("sqlite:///")).parent / ARTIFACT_ROOT / name
                    ).resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # created meanwhile by a parallel job
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def init_store() -> None:
    """Create the store and experiments once, before parallel jobs race to do it."""
    for name in EXPERIMENTS:
        experiment_id(name)


# DVC's records of data versions change with every run; they are not code.
NOT_CODE = (":(exclude)dvc.lock", ":(exclude,glob)**/*.dvc")


def changed_code_files() -> list[str]:
    """Tracked files with uncommitted changes, leaving out DVC's data records."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                          *NOT_CODE], capture_output=True, text=True, check=False)
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def git_state() -> dict[str, str]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    dirty = changed_code_files() if commit else []
    return {
        "mlflow.source.git.commit": commit or "unknown",
        "git.dirty": "unknown" if not commit else str(bool(dirty)),
    }


def file_hashes(path: str | os.PathLike) -> dict[str, str]:
    """sha256 and md5 (DVC's file hash) of a file, or of every file in a directory."""
    path = Path(path)
    targets = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    sha, md5 = hashlib.sha256(), hashlib.md5()
    for target in targets:
        if path.is_dir():
            sha.update(str(target.relative_to(path)).encode())
            md5.update(str(target.relative_to(path)).encode())
        with open(target, "rb") as f:
            while block := f.read(1 << 20):
                sha.update(block)
                md5.update(block)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


class _Terminated(Exception):
    """Raised inside a job on SIGTERM so its run is closed as FAILED."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(f"stopped by signal {signum}")


class JobRun:
    """The active MLflow run of one job."""

    def __init__(self, mlflow: Any, run: Any) -> None:
        self._mlflow = mlflow
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | os.PathLike, directory: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=directory)

    def log_text(self, text: str, file: str) -> None:
        self._mlflow.log_text(text, file)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._mlflow.set_tags(dict(tags))


@contextmanager
def job_run(
    experiment: str,
    name: str,
    stage: str,
    params: Mapping[str, str],
    seed: int | None,
    inputs: list[str],
    cfg: Mapping[str, Any],
    device: str,
    extra_tags: Mapping[str, str] | None = None,
) -> Iterator[JobRun]:
    """One MLflow run around one job: params, seed, code and data versions, environment.

    The job's process is set up here, before anything is recorded, so that the flags logged
    are the ones the job runs with: ``cfg["threads"]`` CPU threads, deterministic kernels.
    """
    from pipeline import numerics
    from pipeline.seeding import determinism_flags, deterministic_torch, fingerprint, set_threads

    set_threads(cfg["threads"])
    deterministic_torch()
    mlflow = _mlflow()
    tags = {"stage": stage, "job": name, "command": job_command(), **owner_tags()}
    tags.update(git_state())
    tags.update({f"env.{k}": v for k, v in fingerprint(device_from(device)).items()})
    tags.update({f"determinism.{k}": v for k, v in determinism_flags().items()})
    tags.update({f"numerics.{k}": v for k, v in numerics.describe().items()})
    for item in inputs:
        for algo, digest in file_hashes(item).items():
            tags[f"input.{item}.{algo}"] = digest
    if seed is not None:
        tags["seed"] = str(seed)
    tags.update(extra_tags or {})
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with mlflow.start_run(experiment_id=experiment_id(experiment), run_name=name,
                              tags=tags) as run:
            logged = dict(params)
            if seed is not None:
                logged["seed"] = str(seed)
            mlflow.log_params(logged)
            mlflow.log_text(json.dumps(dict(cfg), indent=2, sort_keys=True, default=str),
                            "config/resolved.json")
            yield JobRun(mlflow, run)
    finally:
        signal.signal(signal.SIGTERM, previous)


def job_command() -> str:
    """The command line that re-runs this job (what ``replicate`` executes), without the
    log file its workflow gave it."""
    argv = sys.argv[1:]
    if "--log" in argv:
        at = argv.index("--log")
        argv = argv[:at] + argv[at + 2:]
    return shlex.join(["python", "-m", "pipeline", *argv])


def device_from(device: str):
    import torch

    return torch.device(device)


CHECKOUT_ID_FILE = Path(".pipeline/checkout-id")


def checkout_id() -> str:
    """A random id for this checkout, made on first use and kept in ``.pipeline/``: on a
    shared tracking server, a checkout reaps only the runs it started itself."""
    if not CHECKOUT_ID_FILE.exists():
        import tempfile
        import uuid

        CHECKOUT_ID_FILE.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=CHECKOUT_ID_FILE.parent, delete=False) as f:
            f.write(uuid.uuid4().hex)
        try:
            os.link(f.name, CHECKOUT_ID_FILE)  # the first job to link wins, the others read it
        except FileExistsError:
            pass
        finally:
            os.unlink(f.name)
    return CHECKOUT_ID_FILE.read_text().strip()


def boot_id() -> str:
    """This boot of this host's kernel: a process of an earlier boot is gone whatever its pid."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def owner_tags() -> dict[str, str]:
    """Who may reap a run: the checkout, the host, its boot, the job's process; and the
    scheduler's job, when a cluster ran it (``scancel``, ``sacct -j``)."""
    tags = {"checkout": checkout_id(), "host": socket.gethostname(), "boot": boot_id(),
            "pid": str(os.getpid())}
    if "SLURM_JOB_ID" in os.environ:
        tags["slurm.job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


def reap_orphans() -> int:
    """Mark FAILED the RUNNING runs of this checkout whose process is gone (killed outright):
    started on this host in an earlier boot, or in this boot by a pid no longer alive. Runs of
    other checkouts and other hosts are never touched, on a shared server too."""
    _mlflow()
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return 0
    mine = owner_tags()
    query = f"attributes.status = 'RUNNING' and tags.checkout = '{mine['checkout']}'"
    reaped = 0
    for run in client.search_runs(ids, query, max_results=5000):
        tags = run.data.tags
        if tags.get("host") != mine["host"] or not tags.get("pid"):
            continue
        if tags.get("boot") == mine["boot"] and _alive(int(tags["pid"])):
            continue
        client.set_terminated(run.info.run_id, status="FAILED")
        reaped += 1
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
