"""MLflow runs: what a job logs, and that no failed or killed job stays RUNNING."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.tracking import job_run

ROOT = Path(__file__).resolve().parents[1]
CFG = {"seeds": [3], "device": "cpu", "threads": 1}


def runs(experiment="clustering"):
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_a_run_logs_params_seed_versions_and_input_hashes(tmp_path):
    import torch

    torch.set_num_threads(2)  # the job's own setting must win, and be what is logged
    torch.use_deterministic_algorithms(False)
    data = tmp_path / "x.bin"
    data.write_bytes(b"abc")
    with job_run("clustering", "j", "pretrain", {"clustering.autoencoder.lr": "0.1"}, 3,
                 [str(data)], CFG, "cpu") as run:
        run.log_metrics({"loss": 1.5}, step=0)
        run.log_metrics({"loss": 0.5}, step=1)
    (r,) = runs()
    assert r.info.status == "FINISHED"
    assert r.data.params == {"clustering.autoencoder.lr": "0.1", "seed": "3"}
    tags = r.data.tags
    assert tags["seed"] == "3" and tags["stage"] == "pretrain"
    assert tags[f"input.{data}.sha256"] == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert tags[f"input.{data}.md5"] == "900150983cd24fb0d6963f7d28e17f72"
    assert "mlflow.source.git.commit" in tags and "git.dirty" in tags
    assert tags["env.torch"].startswith("2.13.0")
    assert tags["determinism.torch.use_deterministic_algorithms"] == "True"
    assert tags["determinism.torch.num_threads"] == "1"
    assert tags["numerics.mode"] == "portable"
    assert tags["numerics.torch.cpu_capability"] == "AVX2"
    assert tags["numerics.env.MKL_CBWR"] == "AVX2,STRICT"
    assert "AVX512" not in tags["numerics.numpy.dispatch"]
    assert tags["numerics.openblas"].endswith(":Haswell")
    history = MlflowClient().get_metric_history(r.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.5), (1, 0.5)]
    assert "config/resolved.json" in [a.path for a in
                                      MlflowClient().list_artifacts(r.info.run_id, "config")]


def test_a_job_that_raises_ends_failed():
    with pytest.raises(RuntimeError):
        with job_run("clustering", "j", "pretrain", {}, 0, [], CFG, "cpu"):
            raise RuntimeError("corrupt input")
    (r,) = runs()
    assert r.info.status == "FAILED"


JOB = """
import sys, time
from pipeline.tracking import job_run
with job_run("tagging", "slow", "train_tagger", {}, 0, [], {"threads": 1}, "cpu"):
    print("started", flush=True)
    time.sleep(60)
"""


def start_job(cwd: Path | None = None):
    proc = subprocess.Popen([sys.executable, "-c", JOB], stdout=subprocess.PIPE, text=True,
                            cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "started"
    return proc


def test_sigterm_marks_the_run_failed():
    proc = start_job()
    assert runs("tagging")[0].info.status == "RUNNING"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert runs("tagging")[0].info.status == "FAILED"


def test_a_killed_job_is_reaped_as_failed():
    proc = start_job()
    proc.kill()  # SIGKILL: the job cannot close its own run
    proc.wait(timeout=30)
    time.sleep(0.1)
    assert runs("tagging")[0].info.status == "RUNNING"
    assert tracking.reap_orphans() == 1
    assert runs("tagging")[0].info.status == "FAILED"
    assert tracking.reap_orphans() == 0


def test_a_live_job_is_not_reaped():
    proc = start_job()
    try:
        assert tracking.reap_orphans() == 0
        assert runs("tagging")[0].info.status == "RUNNING"
    finally:
        proc.kill()
        proc.wait()


def test_two_checkouts_on_one_server_reap_only_their_own_runs(tmp_path, monkeypatch):
    """Two checkouts track to one store (as on a shared server): a job killed in one is
    reaped by that checkout's next start, never by the other's; a run of another host is
    never touched; a run of this checkout from an earlier boot is reaped whatever its pid."""
    first, second = tmp_path / "first", tmp_path / "second"
    for checkout in (first, second):
        checkout.mkdir()
    monkeypatch.chdir(first)
    proc = start_job(cwd=first)
    proc.kill()
    proc.wait(timeout=30)
    (killed,) = runs("tagging")
    assert killed.data.tags["checkout"] == tracking.checkout_id()
    monkeypatch.chdir(second)
    assert tracking.checkout_id() != killed.data.tags["checkout"]
    assert tracking.reap_orphans() == 0  # not this checkout's run
    assert runs("tagging")[0].info.status == "RUNNING"

    client = MlflowClient()
    exp = client.get_experiment_by_name("tagging").experiment_id
    mine = tracking.owner_tags()  # second's own runs: a live pid, but an earlier boot ...
    earlier_boot = client.create_run(exp, tags={**mine, "boot": "an-earlier-boot"})
    elsewhere = client.create_run(exp, tags={**mine, "host": "another-host", "pid": "1"})
    live = client.create_run(exp, tags=mine)  # ... and this very process, alive
    assert tracking.reap_orphans() == 1
    status = {r.info.run_id: r.info.status for r in runs("tagging")}
    assert status[earlier_boot.info.run_id] == "FAILED"
    assert status[elsewhere.info.run_id] == status[live.info.run_id] == "RUNNING"
    assert status[killed.info.run_id] == "RUNNING"
    monkeypatch.chdir(first)
    assert tracking.reap_orphans() == 1
    assert client.get_run(killed.info.run_id).info.status == "FAILED"


def test_artifacts_of_a_local_store_stay_beside_it(isolated_mlflow):
    tracking.init_store()
    exp = mlflow.get_experiment_by_name("clustering")
    db_dir = isolated_mlflow.removeprefix("sqlite:///").rsplit("/", 1)[0]
    assert exp.artifact_location.startswith(f"file://{db_dir}/mlartifacts/")


def test_dirty_means_code_not_dvc_records(tmp_path, monkeypatch):
    """dvc.lock and .dvc files change with every run; they must not mark the code dirty."""
    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], check=True)
    for name, text in {"dvc.lock": "a", "x.py": "b", "data/f.dvc": "c"}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "i"], check=True)
    (tmp_path / "dvc.lock").write_text("changed")
    (tmp_path / "data/f.dvc").write_text("changed")
    assert tracking.git_state()["git.dirty"] == "False"
    (tmp_path / "x.py").write_text("changed")
    assert tracking.git_state()["git.dirty"] == "True"
    assert tracking.changed_code_files() == ["x.py"]
