"""The active-learning simulation through Snakemake on a tiny configuration: rounds are DAG
jobs with DVC-tracked outputs and MLflow runs, a rerun of a round gives the same bytes, the
report draws the learning curves, and the default DAG is untouched by the simulation's
rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from projects import sh, sha, tiny_project

from pipeline import config, workflow

ROOT = Path(__file__).resolve().parents[1]

# Two tiny rounds on the demo POS corpus (EWT dev, 1,800 pool sentences), one epoch each
# (no minimum of updates), two strategies and the successor check.
OVERLAY = {
    "seeds": [0],
    "clustering": {"datasets": {"digits": None}},
    "tagging": {"corpora": {"uner_ewt_dev": None}, "models": [],
                "variants": {"fast": {"max_epochs": 1, "average_last": 1, "min_updates": 0}}},
    "active_learning": {"simulation": {
        "corpora": ["ewt_pos_dev"], "strategies": ["random", "mnlp"],
        "fractions": [0.01, 0.02],
        "successor": {"tagger": "bilstm_softmax", "strategy": "mnlp", "rounds": [1]}}},
}


def round_dir(root: Path, strategy: str, r: int) -> Path:
    return root / workflow.path("al_round", corpus="ewt_pos_dev", strategy=strategy, seed=0,
                                round=r)


@pytest.mark.slow
def test_the_simulation_runs_as_dag_jobs_and_reruns_to_the_same_bytes(tmp_path):
    root = tiny_project(tmp_path, OVERLAY)
    sh(root, "snakemake", "--cores", "2")
    cfg = config.load(root / "params.yaml")
    for kind, w in workflow.al_jobs(cfg):
        base = root / workflow.path(kind, **w)
        assert all((base / f).is_file() for f in workflow.FILES[kind]), base

    pool_tokens = json.loads((round_dir(root, "full", 0) / "metrics.json").read_text())[
        "labelled_tokens"]
    seed_set = json.loads((round_dir(root, "random", 0) / "selection.json").read_text())
    picked = json.loads((round_dir(root, "mnlp", 1) / "selection.json").read_text())
    assert seed_set["pool_tokens"] == picked["pool_tokens"] == pool_tokens
    assert picked["labelled"][:len(seed_set["labelled"])] == seed_set["labelled"]
    tokens = sum(c["tokens"] for c in seed_set["chosen"] + picked["chosen"])
    assert picked["budget_tokens"] <= tokens < picked["budget_tokens"] + 100
    confidence = [c["confidence"] for c in picked["chosen"]]
    assert confidence and confidence == sorted(confidence)  # least confident first
    assert json.loads((round_dir(root, "mnlp", 1) / "run.json").read_text())["chosen_by"] == \
        json.loads((round_dir(root, "random", 0) / "run.json").read_text())["run_id"]

    # DVC tracks every round's selection and model: dvc.yaml has the rounds, all committed
    assert json.loads(sh(root, "dvc", "status", "--json").stdout or "{}") == {}
    lock = (root / "dvc.lock").read_text()
    assert str(round_dir(root, "mnlp", 1).relative_to(root) / "selection.json") in lock

    # the report: a learning-curve figure and the table, from the rounds' numbers
    report = root / "reports"
    assert (report / workflow.AL_FIGURE.format(corpus="ewt_pos_dev")).stat().st_size > 10_000
    (entry,) = [e for e in json.loads((report / "results.json").read_text())
                if e["task"] == "active_learning"]
    assert [r["strategy"] for r in entry["strategies"]] == ["random", "mnlp"]
    assert entry["data"]["curves"]["mnlp"][0]["points"][0] == entry["data"]["curves"][
        "random"][0]["points"][0]  # round 0 is the shared seed set
    assert "Active learning: ewt_pos_dev" in (report / "results.html").read_text()
    assert "Successor check" in (report / "results.md").read_text()

    # each round is one finished MLflow run with its strategy and round
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["active_learning"], output_format="list")
    assert len(runs) == len(workflow.al_jobs(cfg))
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {(r.data.tags["strategy"], r.data.tags["round"]) for r in runs
            if r.data.tags["stage"] == "al_round"} == {
        ("full", "0"), ("random", "0"), ("random", "1"), ("mnlp", "1")}

    # a second run finds nothing to do; the chain redone gives the same bytes
    again = sh(root, "snakemake", "--cores", "1", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    chain = [round_dir(root, "random", 0) / f for f in workflow.FILES["al_round"]
             if f not in ("run.json", "history.json")]  # run ids and epoch timings differ
    chain += [round_dir(root, "mnlp", 1) / f.name for f in chain]
    before = [sha(f) for f in chain]
    sh(root, "snakemake", "--cores", "1", "--forcerun", "al_round",
       str(round_dir(root, "mnlp", 1).relative_to(root) / "metrics.json"))
    assert [sha(f) for f in chain] == before


def test_the_default_dag_has_no_simulation_job():
    cfg = config.load(ROOT / "params.yaml")
    assert workflow.al_jobs(cfg) == []
    assert workflow.report_files(cfg) == workflow.FILES["report"]
    assert "active_learning.simulation" not in workflow.param_keys("report", cfg)


def test_the_profile_states_its_budgets():
    cfg = config.load(ROOT / "params.yaml", overlays=[str(ROOT / "configs/active-learning.yaml")])
    sim = cfg["active_learning"]["simulation"]
    assert sim["corpora"] == ["ud_ewt", "uner_ewt_dev"] and cfg["seeds"] == [1, 2, 3]
    assert sim["fractions"][0] == 0.02 and sim["fractions"][-1] == 0.5
    assert sim["tagger"] in cfg["tagging"]["variants"] and not sim["warm_start"]
    assert sim["successor"]["tagger"] != sim["tagger"]
    assert [sim["fractions"][r] for r in sim["successor"]["rounds"]] == [0.1, 0.2]
    ud = cfg["tagging"]["corpora"]["ud_ewt"]
    assert "test" not in ud and ud["dev"].endswith("en_ewt-ud-dev.conllu.xz")
    assert cfg["tagging"]["models"] == []
