"""Beyond one machine, for real: the DAG submitted to a single-node SLURM cluster
(.ci/slurm-up.sh: slurmctld, slurmd, slurmdbd), tracked on an MLflow server backed by
PostgreSQL with artifacts in S3, and pushed to a DVC remote on the same S3 (a moto server;
.ci/services-up.sh). The services are started here and stopped after."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from projects import BIN, ROOT, sh, sha, tiny_project

from pipeline import config, workflow

pytestmark = pytest.mark.cluster

# Digits with k-means and one tagger on EWT dev, one seed: every kind of stage, 7 jobs.
CLUSTER = {"seeds": [0], "clustering": {"models": ["kmeans"]},
           "tagging": {"corpora": {"uner_ewt_dev": None}}}


@pytest.fixture(scope="module")
def services() -> dict[str, str]:
    """SLURM, PostgreSQL, moto and the MLflow server; the environment their clients need."""
    try:
        for script in ("slurm-up.sh", "services-up.sh"):
            subprocess.run(["bash", str(ROOT / ".ci" / script)], check=True, timeout=600)
        env_file = Path(os.environ.get("SVC_STATE", "/tmp/svc-ci")) / "env.sh"
        env = dict(line.removeprefix("export ").split("=", 1)
                   for line in env_file.read_text().splitlines() if line.startswith("export "))
        yield env
    finally:
        subprocess.run(["bash", str(ROOT / ".ci/services-down.sh"), "--purge"], check=False)
        subprocess.run(["bash", str(ROOT / ".ci/slurm-down.sh")], check=False)


def project(root: Path, overlay: dict | None = None) -> Path:
    root.mkdir()
    tiny_project(root, config.deep_merge(CLUSTER, overlay or {}))
    sh(root, "git", "rm", "-q", "dvc.lock")  # the repository's lock is for the default DAG
    sh(root, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "no lock")
    return root


def on_slurm(request: pytest.FixtureRequest, root: Path, env: dict[str, str], *targets: str
             ) -> subprocess.Popen:
    """Snakemake for ``targets`` on the cluster, in the background; killed with the test if
    still running (a failed assertion must not leave it waiting on SLURM)."""
    proc = subprocess.Popen(["snakemake", "--profile", "profiles/slurm", *targets], cwd=root,
                            env={**os.environ, **env, "CI": "true",
                                 "PATH": f"{BIN}:{os.environ['PATH']}"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    request.addfinalizer(lambda: proc.poll() is None and proc.kill())
    return proc


def results(root: Path) -> dict[str, str]:
    """sha256 of every metrics.json and weight file."""
    return {str(p.relative_to(root)): sha(p) for pattern in ("metrics.json", "*.pt")
            for top in ("models", "results") for p in sorted((root / top).rglob(pattern))}


def sacct(root: Path) -> list[tuple[str, str]]:
    """(job id, state) of every SLURM job that ran in ``root``."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", "now-1days",
                          "--format=JobID,State,WorkDir"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    return [(job, state) for job, state, workdir in rows if workdir == str(root)]


def runs_of(root: Path, env: dict[str, str]) -> list:
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    checkout = (root / ".pipeline/checkout-id").read_text().strip()
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, f"tags.checkout = '{checkout}'")


def test_two_checkouts_on_slurm_give_the_local_bytes_and_round_trip_through_s3(
        services, tmp_path, request):
    """Two checkouts run the DAG on the cluster at once, tracked on one server: both give the
    bytes of the same DAG run locally, every job is COMPLETED in sacct, each checkout's runs
    are its own and FINISHED, and `replicate` re-runs one from the server's record; pushed
    to S3 and pulled into a fresh clone, nothing is left to do."""
    local = project(tmp_path / "local")
    sh(local, "snakemake", "--cores", "2")
    expected = results(local)
    assert len(expected) == 4  # k-means state + tagger weights, two metrics files

    checkouts = [project(tmp_path / name) for name in ("first", "second")]
    procs = [on_slurm(request, root, services) for root in checkouts]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]

    for root in checkouts:
        assert results(root) == expected
        jobs = sacct(root)
        assert len(jobs) == 7 and {state for _, state in jobs} == {"COMPLETED"}, jobs
        runs = runs_of(root, services)
        assert len(runs) == 4  # train + evaluate, k-means and tagger
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert all(r.info.artifact_uri.startswith("mlflow-artifacts:/") for r in runs)
    ids = [{r.info.run_id for r in runs_of(root, services)} for root in checkouts]
    assert not ids[0] & ids[1]
    # an auditor re-runs a job from the server's record (config and artifacts from S3)
    (train,) = [r for r in runs_of(checkouts[0], services)
                if r.data.tags["stage"] == "train_clustering"]
    audit = sh(checkouts[0], "python", "-m", "pipeline", "replicate", train.info.run_id,
               env=services)
    assert "1 of 1 runs replicated" in audit.stdout

    first = checkouts[0]
    remote = f"{services['SVC_DVC_REMOTE_URL']}/{uuid.uuid4().hex}"
    sh(first, "dvc", "remote", "add", "-d", "s3", remote)
    sh(first, "dvc", "remote", "modify", "s3", "endpointurl", services["SVC_S3_ENDPOINT_URL"])
    sh(first, "dvc", "push", "-q", env=services)
    sh(first, "git", "add", ".dvc/config", "dvc.lock")
    sh(first, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "results")
    fresh = tmp_path / "fresh"
    sh(tmp_path, "git", "clone", "-q", str(first), str(fresh))
    sh(fresh, "python", "-m", "pipeline", "dvc-pull", env=services)
    stages = yaml.safe_load((fresh / "dvc.lock").read_text())["stages"].values()
    for path in [out["path"] for stage in stages for out in stage["outs"]]:
        for f in [fresh / path] if (fresh / path).is_file() else (fresh / path).rglob("*"):
            if f.is_file():
                assert f.read_bytes() == (first / f.relative_to(fresh)).read_bytes(), f
    dry = sh(fresh, "snakemake", "-n", "--cores", "1")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_scancel_of_a_training_job_fails_its_run_and_reruns_only_that_job(
        services, tmp_path, request):
    """A training job stopped on the cluster (scancel's SIGTERM): its MLflow run ends FAILED,
    no output of it is left, Snakemake stops, and the next run redoes that job alone."""
    root = project(tmp_path / "p", {"tagging": {"trainer": {"max_epochs": 10}}})
    model_dir = root / workflow.path("tagger", corpus="ewt_pos_dev", model="bilstm_softmax",
                                     seed=0)
    target = str((model_dir / "model.pt").relative_to(root))
    proc = on_slurm(request, root, services, target)
    deadline = time.monotonic() + 300
    while not (training := [r for r in runs_of_if_any(root, services)
                            if r.data.tags["stage"] == "train_tagger"]):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.5)
    # SIGTERM to the job's steps, as a plain scancel starts with; the job then ends FAILED.
    # (After a plain scancel sacct says "CANCELLED by <uid>", which
    # snakemake-executor-plugin-slurm 2.6.1 does not take for a failure: it waits on.)
    subprocess.run(["scancel", "--signal=TERM", training[0].data.tags["slurm.job_id"]],
                   check=True)
    run_id = training[0].info.run_id
    client = MlflowClient(services["MLFLOW_TRACKING_URI"])
    while client.get_run(run_id).info.status == "RUNNING":  # the job's SIGTERM handler
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert client.get_run(run_id).info.status == "FAILED"
    assert not (model_dir / "model.pt").exists() and not (model_dir / "run.json").exists()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "Error in rule train_tagger" in out, out[-3000:]

    rerun = on_slurm(request, root, services, target)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out[-3000:]
    states = sorted(state.split()[0] for _, state in sacct(root))
    assert states == ["COMPLETED", "COMPLETED", "FAILED"]  # prepare, training, again
    assert (model_dir / "run.json").exists()
    (rerun_run,) = [r for r in runs_of(root, services)
                    if r.data.tags["stage"] == "train_tagger" and r.info.status == "FINISHED"]
    assert rerun_run.data.tags["slurm.job_id"] != training[0].data.tags["slurm.job_id"]


def runs_of_if_any(root: Path, env: dict[str, str]) -> list:
    """The checkout's runs, none before its first job has made its id."""
    return runs_of(root, env) if (root / ".pipeline/checkout-id").exists() else []
