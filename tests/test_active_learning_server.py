"""The annotators' active-learning loop on a real Label Studio: ``push --strategy`` imports
the most informative texts with scored pre-annotations, and the server's queue
(``/api/projects/<id>/next``) serves the most uncertain one first."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import mlflow
import pytest
import yaml
from label_studio_sdk import LabelStudio

from annotation.cli import main
from annotation.corpus import rank_tasks, read_corpus
from pipeline.config import load
from tests import labelstudio_server
from tests.labelstudio_server import requires_server
from tests.test_annotation_server import tiny_tagger

pytestmark = [pytest.mark.labelstudio, requires_server]
REPO = Path(__file__).resolve().parents[1]
labelstudio_template = labelstudio_server.labelstudio_template  # fixtures, shared by import
labelstudio = labelstudio_server.labelstudio

TEXTS = ["Ada met Bob in London .", "Hi .", "The cat sat on a mat in Paris today .",
         "IBM hired Grace .", "Nothing here at all , really nothing .", "Zoë ran .",
         "A long sentence about Ada and Alan and Grace in Cambridge and Oxford .",
         "Bob ."]


@pytest.fixture
def work(labelstudio, tmp_path, monkeypatch):
    """Own project (named after the test), params, corpus and tagger; the server's env."""
    def make(title: str) -> tuple[Path, str]:
        cfg = load(REPO / "params.yaml")
        cfg["annotation"]["exports"]["uner_ewt_dev"].update(
            project=title, snapshot=str(tmp_path / "export.json"))
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        assert main(["--params", str(params), "setup"]) == 0
        return params, tiny_tagger(tmp_path)

    (tmp_path / "pool.txt").write_text("".join(f"{t}\n" for t in TEXTS), encoding="utf-8")
    monkeypatch.setenv("LABEL_STUDIO_URL", labelstudio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", labelstudio.api_key)
    monkeypatch.chdir(tmp_path)
    return make


def push(params: Path, capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["--params", str(params), "push", "pool.txt", *args]) == 0
    return json.loads(capsys.readouterr().out.splitlines()[-1])


def next_task(live, project_id: int) -> dict:
    answer = httpx.get(f"{live.url}/api/projects/{project_id}/next",
                       headers={"Authorization": f"Token {live.api_key}"}, timeout=30)
    answer.raise_for_status()
    return answer.json()


def project(live, title: str):
    ls = LabelStudio(base_url=live.url, api_key=live.api_key)
    (found,) = [p for p in ls.projects.list() if p.title == title]
    return ls, ls.projects.get(id=found.id)


def test_the_server_serves_the_most_uncertain_task_first(labelstudio, work, capsys):
    params, bundle = work("AL uncertainty")
    out = push(params, capsys, "--model", bundle, "--strategy", "mnlp", "--sample", "3")
    assert (out["imported"], out["sampling"], out["model_version"]) == (
        3, "Uncertainty sampling", "run-0123")
    ls, proj = project(labelstudio, "AL uncertainty")
    assert (proj.sampling, proj.model_version) == ("Uncertainty sampling", "run-0123")

    cfg = load(params)
    pool = read_corpus("pool.txt", "text")
    order, confidence = rank_tasks(bundle, pool, "mnlp", 0, cfg["active_learning"]["query"], 3)
    expected = [pool[i]["text"] for i in order]
    tasks = list(ls.tasks.list(project=proj.id, fields="all"))
    scores = {t.data["text"]: t.predictions[0].score for t in tasks}
    assert sorted(scores) == sorted(expected[:3])  # the three most informative, no others
    assert scores == pytest.approx({pool[i]["text"]: float(confidence[i]) for i in order[:3]})
    assert all(t.predictions[0].model_version == "run-0123" for t in tasks)

    # the annotator's queue: most uncertain first, then the next; submitting moves it on
    for text in expected[:2]:
        task = next_task(labelstudio, proj.id)
        assert task["data"]["text"] == text
        assert task["predictions"][0]["score"] == min(
            scores[t] for t in expected[:3] if t in scores)
        ls.annotations.create(id=task["id"], result=[])
        del scores[text]

    # a second push ranks only what the project lacks
    again = push(params, capsys, "--model", bundle, "--strategy", "mnlp", "--sample", "10")
    assert (again["already_in_project"], again["imported"]) == (3, len(TEXTS) - 3)

    run = mlflow.get_run(out["mlflow_run"])
    assert run.data.params["strategy"] == "mnlp" and run.data.params["model_run_id"] == "run-0123"
    assert run.data.params["pool_sha256"] == __import__("hashlib").sha256(
        Path("pool.txt").read_bytes()).hexdigest()
    ranking = json.loads(mlflow.artifacts.load_text(
        f"runs:/{out['mlflow_run']}/push/ranking.json"))
    assert [r["imported"] for r in ranking] == [True] * 3 + [False] * (len(TEXTS) - 3)
    assert [r["confidence"] for r in ranking[:3]] == sorted(r["confidence"] for r in ranking[:3])


def test_an_order_that_is_no_score_is_imported_in_rank_order(labelstudio, work, capsys):
    """mnlp_diverse's order is not a confidence: sequential sampling serves import order."""
    params, bundle = work("AL diverse")
    out = push(params, capsys, "--model", bundle, "--strategy", "mnlp_diverse", "--sample", "4")
    assert (out["imported"], out["sampling"]) == (4, "Sequential sampling")
    pool = read_corpus("pool.txt", "text")
    order, _ = rank_tasks(bundle, pool, "mnlp_diverse", 0,
                          load(params)["active_learning"]["query"], 4)
    ls, proj = project(labelstudio, "AL diverse")
    assert proj.sampling == "Sequential sampling"
    assert next_task(labelstudio, proj.id)["data"]["text"] == pool[order[0]]["text"]


def test_a_strategy_that_needs_a_model_says_so(work, capsys):
    params, _ = work("AL no model")
    assert main(["--params", str(params), "push", "pool.txt", "--strategy", "bald"]) == 1
    assert "needs a trained tagger: --model" in capsys.readouterr().err
