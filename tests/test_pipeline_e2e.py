"""The real DAG, end to end: Snakemake runs every stage on a tiny configuration in a
temporary copy of the repository, with a real MLflow store and real DVC."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from projects import BIN, sh, sha, tiny_project

from pipeline import config, dvcgen, workflow

pytestmark = pytest.mark.slow


def test_every_result_and_the_report_are_written(project):
    cfg = config.load(project / "params.yaml")
    for model in cfg["clustering"]["models"]:
        for seed in cfg["seeds"]:
            m = json.loads((project / workflow.path("clustering_result", dataset="digits",
                                                    model=model, seed=seed)
                            / "metrics.json").read_text())
            assert set(m) == {"acc", "nmi", "ari"} and 0 < m["acc"] <= 1
    for corpus in cfg["tagging"]["corpora"]:
        for seed in cfg["seeds"]:
            base = project / workflow.path("tagging_result", corpus=corpus,
                                           model="bilstm_softmax", seed=seed)
            m = json.loads((base / "metrics.json").read_text())
            assert 0 < m["accuracy"] <= 1
            if corpus == "uner_ewt_dev":
                assert {"precision", "recall", "f1", "per_type"} <= set(m)
            assert (base / "predictions.conll").stat().st_size > 0
    report = (project / "reports/results.md").read_text()
    for name in ["digits", "kmeans", "ae_kmeans", "uner_ewt_dev", "ewt_pos_dev", "±"]:
        assert name in report
    assert "| row − column | ae_kmeans | kmeans |" in report \
        or "| row − column | kmeans | ae_kmeans |" in report  # the comparison matrix


def test_mlflow_has_one_finished_run_per_job_with_seed_and_params(project):
    cfg = config.load(project / "params.yaml")
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps, max_results=1000)
    by_stage: dict[str, list] = {}
    for r in runs:
        by_stage.setdefault(r.data.tags["stage"], []).append(r)
    n_seeds = len(cfg["seeds"])
    assert len(by_stage["pretrain"]) == n_seeds
    assert len(by_stage["train_clustering"]) == 2 * n_seeds
    assert len(by_stage["evaluate_clustering"]) == 2 * n_seeds
    assert len(by_stage["train_tagger"]) == 2 * n_seeds
    assert len(by_stage["evaluate_tagger"]) == 2 * n_seeds
    assert all(r.info.status == "FINISHED" for r in runs)
    for r in by_stage["train_tagger"]:
        tags = r.data.tags
        expected = workflow.param_values("train_tagger", cfg, corpus=tags["corpus"],
                                         model=tags["model"])
        assert r.data.params == expected | {"seed": tags["seed"]}
        assert int(tags["seed"]) in cfg["seeds"]
        assert tags["mlflow.source.git.commit"] != "unknown"
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id, "model")}
        assert {"model/model.pt", "model/architecture.txt"} <= artifacts
    for r in by_stage["train_clustering"]:
        assert any(k.startswith("input.data/prepared/clustering/digits/x.npy")
                   for k in r.data.tags)
    (export,) = by_stage["export"]  # the source, the task count and the bytes, recorded
    entry = cfg["annotation"]["exports"]["uner_ewt_dev"]
    exported = project / workflow.path("export", name="uner_ewt_dev")
    assert export.data.tags["export.source"] == "snapshot"
    assert export.data.tags["export.sha256"] == sha(exported)
    assert export.data.params == workflow.param_values("export", cfg, name="uner_ewt_dev")
    snapshot = json.loads((project / entry["snapshot"]).read_text())
    assert export.data.metrics["tasks"] == len(snapshot)


def test_the_export_source_is_a_parameter(project):
    """Switching an export to a server changes its params (a rerun) and DVC always re-runs it:
    a server's project changes with nothing changing here."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    saved = {n: (project / n).read_bytes() for n in ("params.yaml", "dvc.yaml")}
    params["annotation"]["exports"]["uner_ewt_dev"].update(source="server",
                                                           url="http://127.0.0.1:9")
    try:
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        sh(project, sys.executable, "-m", "pipeline", "dvc-yaml")
        stage = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["export"]
        assert stage["always_changed"] is True
        assert entry_files(stage) == sorted(workflow.code("export"))  # no snapshot
        status = json.loads(sh(project, "dvc", "status", "--json", "export@uner_ewt_dev").stdout)
        assert any("params.yaml" in c.get("changed deps", {})
                   for c in status["export@uner_ewt_dev"] if isinstance(c, dict))
        dry = sh(project, "snakemake", "-n", "--cores", "1", check=False)
        assert "export" in dry.stdout + dry.stderr
    finally:
        for n, data in saved.items():
            (project / n).write_bytes(data)


def entry_files(stage: dict) -> list[str]:
    return sorted(d for d in stage["deps"] if d != "params.yaml")


def test_dvc_is_clean_and_pushes(project):
    status = sh(project, "dvc", "status", "--json")
    assert json.loads(status.stdout or "{}") == {}
    sh(project, "dvc", "push", "-q")
    assert any((project / ".dvcstore").rglob("*"))
    assert (project / "dvc.lock").exists()


def test_a_partial_run_exits_0_and_commits_exactly_what_it_made(tmp_path):
    root = tiny_project(tmp_path)
    (root / "dvc.lock").unlink()  # the repository's lock describes the full default run
    target = workflow.path("clustering_result", dataset="digits", model="kmeans", seed=0)
    run = sh(root, "snakemake", "--cores", "2", f"{target}/metrics.json", check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "committed the 3 of" in run.stderr
    locked = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(locked) == {"prepare_clustering@digits", "train_clustering_kmeans@digits-kmeans-0",
                           "evaluate_clustering@digits-kmeans-0"}
    status = sh(root, "dvc", "status", "--json", *locked)
    assert json.loads(status.stdout) == {}


def trained_seconds(pid: int, stage: str) -> float:
    """CPU seconds of the running ``python -m pipeline <stage>`` under ``pid`` (0: none yet)."""
    import psutil

    for child in psutil.Process(pid).children(recursive=True):
        try:
            if stage in child.cmdline():
                return sum(child.cpu_times()[:2])
        except psutil.Error:  # a short-lived child (the onstart hooks) already gone
            continue
    return 0.0


def kill_when(root: Path, target: str, ready: Callable[[int], bool]) -> None:
    """Run Snakemake for ``target``; once ``ready(its pid)``, kill -9 it and its jobs."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    log = (root / "killed.log").open("w")
    proc = subprocess.Popen(["snakemake", "--cores", "1", target], cwd=root,
                            env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if ready(proc.pid):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the job never got going:\n"
                                 + (root / "killed.log").read_text()[-3000:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stage_runs(root: Path, stage: str) -> list:
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    return [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
            if r.data.tags["stage"] == stage]


def test_a_run_killed_mid_export_loses_no_export_and_reruns_only_that_job(tmp_path):
    """kill -9 while the export stage is reading its source (a snapshot fed through a pipe,
    only its start written): nothing that looks like a finished export is left, the one
    finished before comes back from DVC, and the next run redoes the export alone."""
    root = tiny_project(tmp_path)
    (root / "dvc.lock").unlink()
    target = workflow.path("export", name="uner_ewt_dev")
    sh(root, "snakemake", "--cores", "1", target)
    before = (root / target).read_bytes()
    snapshot = root / "data" / "snapshots" / "uner_ewt_dev.json"
    tasks = json.loads(snapshot.read_text(encoding="utf-8"))
    fifo = root / "data" / "snapshots" / "fed.json"
    os.mkfifo(fifo)
    params = config.read_yaml(root / "params.yaml")
    params["annotation"]["exports"]["uner_ewt_dev"]["snapshot"] = str(fifo.relative_to(root))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    feed: list[int] = []

    def half_fed(_: int) -> bool:
        """Once the export job opens the pipe, write the snapshot's first 4 KiB (of 2.7 MB)
        and hold the pipe open."""
        if not feed:
            try:
                feed.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # ENXIO: no reader yet
                return False
            os.write(feed[0], snapshot.read_bytes()[:4096])
            return False
        return True  # a poll later: the job is blocked reading the rest

    try:
        kill_when(root, target, half_fed)
    finally:
        for fd in feed:
            os.close(fd)
    out = root / target
    assert not out.exists()  # Snakemake cleared it for the job; nothing half-written in its place
    assert [r.info.status for r in stage_runs(root, "export")] == ["FINISHED"]  # no new run
    sh(root, "dvc", "checkout", target)  # the last export is not lost: DVC holds it
    assert out.read_bytes() == before

    fifo.unlink()
    fifo.write_text(json.dumps(tasks[:-1]), encoding="utf-8")  # the source, one task less
    sh(root, "snakemake", "--unlock", target)
    rerun = sh(root, "snakemake", "--cores", "1", target)
    assert re.findall(r"^(?:local)?rule (\w+):", rerun.stdout + rerun.stderr, re.M) == ["export"]
    assert json.loads(out.read_text(encoding="utf-8")) == tasks[:-1]
    assert not list(out.parent.glob("*.tmp*"))
    assert [r.info.status for r in stage_runs(root, "export")] == ["FINISHED"] * 2


def test_a_run_killed_mid_training_leaves_nothing_finished_and_reruns_only_that_job(tmp_path):
    """kill -9 of Snakemake and its job mid-pretraining (a crash): no output looks finished,
    the killed MLflow run ends FAILED, and the next plain run redoes only that job."""
    root = tiny_project(tmp_path)
    params = config.read_yaml(root / "params.yaml")
    params["clustering"]["autoencoder"]["epochs"] = 2000  # minutes: killed long before
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "dvc.lock").unlink()
    target = f"{workflow.path('autoencoder', dataset='digits', seed=0)}/weights.pt"
    out = (root / target).parent
    kill_when(root, target, lambda pid: trained_seconds(pid, "pretrain") > 20)
    assert not out.exists() or not any(p.name in {"weights.pt", "history.json", "run.json"}
                                       for p in out.iterdir())
    (killed,) = stage_runs(root, "pretrain")
    assert killed.info.status == "RUNNING"  # nobody could close it

    params["clustering"]["autoencoder"]["epochs"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # A killed Snakemake leaves its lock; it says so, and --unlock is the documented way out.
    locked = sh(root, "snakemake", "--cores", "1", target, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    sh(root, "snakemake", "--unlock", target)
    rerun = sh(root, "snakemake", "--cores", "1", target)
    stats = rerun.stdout + rerun.stderr
    assert "pretrain_autoencoder" in stats and "prepare_clustering" not in stats
    assert (out / "run.json").exists()
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    assert client.get_run(killed.info.run_id).info.status == "FAILED"  # reaped at the start


def test_a_second_run_does_nothing(project):
    dry = sh(project, "snakemake", "-n", "--cores", "1")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_same_seed_same_bytes_other_seed_other_weights(project):
    """Re-run finished jobs by hand: outputs must come back byte-identical."""
    ae = [project / workflow.path("autoencoder", dataset="digits", seed=s) / "weights.pt"
          for s in (0, 1)]
    assert sha(ae[0]) != sha(ae[1])
    model_dir = project / workflow.path("clustering_model", dataset="digits",
                                        model="ae_kmeans", seed=0)
    tagger = project / workflow.path("tagger", corpus="ewt_pos_dev", model="bilstm_softmax",
                                     seed=0) / "model.pt"
    result = project / workflow.path("tagging_result", corpus="ewt_pos_dev",
                                     model="bilstm_softmax", seed=0)
    files = [ae[0], model_dir / "state.pt", model_dir / "predictions.npy", tagger,
             result / "metrics.json", result / "predictions.conll"]
    before = {f: sha(f) for f in files}
    py = [sys.executable, "-m", "pipeline"]
    sh(project, *py, "pretrain", "--dataset", "digits", "--seed", "0")
    sh(project, *py, "train-clustering", "--dataset", "digits", "--model", "ae_kmeans",
       "--seed", "0")
    sh(project, *py, "train-tagger", "--corpus", "ewt_pos_dev", "--model", "bilstm_softmax",
       "--seed", "0")
    sh(project, *py, "evaluate-tagger", "--corpus", "ewt_pos_dev", "--model", "bilstm_softmax",
       "--seed", "0")
    assert {f: sha(f) for f in files} == before


def test_a_corrupt_input_fails_cleanly_naming_file_and_problem(project):
    bad = project / "data/corpora/broken.conllu"
    bad.write_text("# sent_id = s1\n1\tHello\thello\tINTJ\n\n")  # too few columns
    overlay = project / "broken.yaml"
    overlay.write_text(yaml.safe_dump({"tagging": {"corpora": {"broken": {
        "format": "conllu", "column": "upos", "train": "data/corpora/broken.conllu"}}}}))
    target = workflow.path("prepared_tagging", corpus="broken") + "/manifest.json"
    proc = sh(project, "snakemake", target, "--cores", "1", "--configfile", "broken.yaml",
              check=False)
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "error: data/corpora/broken.conllu:2: expected 10 tab-separated columns" in log
    prepared = project / workflow.path("prepared_tagging", corpus="broken")
    assert not prepared.exists() or not any(prepared.iterdir())


# --- replicate: an auditor re-runs a recorded job and learns whether it came out the same ---

def tagger_run_id(project: Path) -> str:
    model_dir = project / workflow.path("tagger", corpus="ewt_pos_dev", model="bilstm_softmax",
                                        seed=1)
    return json.loads((model_dir / "run.json").read_text())["run_id"]


def replicate(project: Path, *args: str) -> subprocess.CompletedProcess:
    return sh(project, sys.executable, "-m", "pipeline", "replicate", *args, check=False)


def test_replicate_an_untouched_run(project):
    run_id = tagger_run_id(project)
    proc = replicate(project, run_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ": replicated" in proc.stdout and "1 of 1 runs replicated" in proc.stdout
    # stdout holds the verdict only (its mismatch and note lines indented under it); MLflow's
    # download progress bars were drawn between them
    verdict, *details, total = proc.stdout.splitlines()
    assert verdict.startswith(f"{run_id} (") and total == "1 of 1 runs replicated"
    assert all(line.startswith("  note: ") for line in details), details
    assert "Downloading artifacts" not in proc.stderr


def test_replicate_names_a_changed_input_file(project):
    data = project / workflow.path("prepared_tagging", corpus="ewt_pos_dev") / "train.jsonl"
    original = data.read_bytes()
    try:  # replace, never edit in place: the file is a hardlink into DVC's cache
        data.unlink()
        data.write_bytes(original.replace(b'"NOUN"', b'"VERB"', 1))
        proc = replicate(project, tagger_run_id(project))
    finally:
        data.unlink()
        data.write_bytes(original)
    assert proc.returncode == 1
    assert "input data changed: data/prepared/tagging/ewt_pos_dev/train.jsonl" in proc.stdout


def test_replicate_names_a_changed_parameter(project):
    params = project / "params.yaml"
    original = params.read_text()
    cfg = yaml.safe_load(original)
    cfg["tagging"]["trainer"]["lr"] = cfg["tagging"]["trainer"]["lr"] * 2
    try:
        params.write_text(yaml.safe_dump(cfg, sort_keys=False))
        proc = replicate(project, tagger_run_id(project), "--allow-code-mismatch")
    finally:
        params.write_text(original)
    assert proc.returncode == 1
    assert "parameter changed: tagging.trainer.lr" in proc.stdout


def test_replicate_refuses_other_code(project):
    source = project / "pipeline/report.py"
    original = source.read_text()
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    try:
        source.write_text(original + "\n# a later change\n")
        dirty = replicate(project, tagger_run_id(project))
        sh(project, *git, "commit", "-qam", "later code")
        later = replicate(project, tagger_run_id(project))
    finally:
        sh(project, *git, "reset", "-q", "--hard", "HEAD~1", check=False)
        source.write_text(original)
    assert dirty.returncode == 2 and "uncommitted changes" in dirty.stdout
    assert later.returncode == 2 and "code differs: run was made at commit" in later.stdout


def test_editing_any_imported_module_makes_exactly_its_stages_stale(project):
    """Append a comment to every source file a stage imports: DVC names, for each stage,
    exactly the files derived for it; the Snakefile reads the same lists."""
    sources = sorted({f for stage in workflow.STAGE_MODULES for f in workflow.code(stage)})
    saved = {f: (project / f).read_bytes() for f in sources}
    before = json.loads(sh(project, "dvc", "status", "--json").stdout or "{}")
    try:
        for f in sources:
            with open(project / f, "a", encoding="utf-8") as out:
                out.write("# edited\n")
        status = json.loads(sh(project, "dvc", "status", "--json").stdout or "{}")
    finally:
        for f, data in saved.items():
            (project / f).write_bytes(data)
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        assert set(status) == {s.name for s in repo.index.stages
                               if s.path == str(project / "dvc.yaml")}
    for name, changes in status.items():
        changed = {path for entry in changes if isinstance(entry, dict)
                   for path in entry.get("changed deps", {})}
        # stage <rule>[_<form>]@<wildcard values>
        rule = max((r for r in dvcgen.STAGE_OF_RULE if name.startswith(r)), key=len)
        stage = dvcgen.STAGE_OF_RULE[rule]
        # source files only: earlier tests in this module re-run jobs and edit params
        assert {p for p in changed if p.endswith(".py")} == set(workflow.code(stage)), name
    # restored: back to what earlier tests in this module left
    assert json.loads(sh(project, "dvc", "status", "--json").stdout or "{}") == before
