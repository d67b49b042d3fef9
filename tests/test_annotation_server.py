"""The annotators' workflow against a real Label Studio: setup, push (with pre-annotations),
two annotators, export, conversion, agreement, serve; errors; the key never leaks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from label_studio_sdk import LabelStudio

from annotation import server
from annotation.agreement import metric_key
from annotation.cli import main
from annotation.convert import tokenize
from annotation.snapshot import convert_snapshot, read_snapshot
from pipeline.config import load
from pipeline.io import sha256_file
from tests import labelstudio_server
from tests.labelstudio_server import USERNAME, requires_server

pytestmark = [pytest.mark.labelstudio, requires_server]
labelstudio_template = labelstudio_server.labelstudio_template  # fixtures, shared by import
labelstudio = labelstudio_server.labelstudio
REPO = Path(__file__).resolve().parents[1]
TITLE = "Agreement test project"
EXPERT = "expert2@example.com"

# text, admin's (gold) spans, expert2's spans; None = expert2 cancelled
CORPUS = [
    ("Ada Lovelace met Charles Babbage in London .",
     [("Ada Lovelace", "PER"), ("Charles Babbage", "PER"), ("London", "LOC")], "same"),
    ("Grace Hopper worked for the US Navy .",
     [("Grace Hopper", "PER"), ("US Navy", "ORG")], [("Grace Hopper", "PER"), ("Navy", "ORG")]),
    ("IBM opened an office in Paris .",
     [("IBM", "ORG"), ("Paris", "LOC")], [("IBM", "LOC"), ("Paris", "LOC")]),
    ("Alan Turing studied at Cambridge .",
     [("Alan Turing", "PER"), ("Cambridge", "ORG")], "same"),
    ("Nothing to see here .", [], None),
    ("Zoë flew to Zürich 🙂 with Amélie .",
     [("Zoë", "PER"), ("Zürich", "LOC"), ("Amélie", "PER")], "same"),
    ("Skipped by everyone .", None, None),
    ("Not annotated yet .", "none", "none"),
]


@pytest.fixture(scope="module")
def work(labelstudio, tmp_path_factory):
    """Params overlay (own project title, snapshot and report paths) and the environment."""
    base = tmp_path_factory.mktemp("annotation-work")
    cfg = load(None)
    cfg["annotation"]["exports"]["uner_ewt_dev"] = {"project": TITLE,
                                                    "snapshot": str(base / "export.json")}
    cfg["annotation"]["agreement"]["out_dir"] = str(base / "reports")
    params = base / "params.yaml"
    params.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    (base / "corpus.txt").write_text("".join(f"{t}\n" for t, *_ in CORPUS), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABEL_STUDIO_URL", labelstudio.url)
        mp.setenv("LABEL_STUDIO_API_KEY", labelstudio.api_key)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{base / 'mlflow.db'}")
        mp.chdir(base)
        yield base, params


def cli(params: Path, *args: str) -> int:
    return main(["--params", str(params), *args])


def sdk(live) -> LabelStudio:
    return LabelStudio(base_url=live.url, api_key=live.api_key)


def project_of(live):
    (project,) = [p for p in sdk(live).projects.list() if p.title == TITLE]
    return project


def region(text: str, span: str, label: str) -> dict:
    start = text.index(span)
    return {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": start + len(span), "text": span, "labels": [label]}}


def test_setup_twice_creates_nothing_new(labelstudio, work, capsys):
    _, params = work
    assert cli(params, "setup") == 0
    assert cli(params, "setup") == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["state"] == "created" and second == first | {"state": "unchanged"}
    assert [p.title for p in sdk(labelstudio).projects.list()].count(TITLE) == 1


def test_push_skips_texts_already_there_and_adds_predictions(labelstudio, work, capsys):
    base, params = work
    bundle = tiny_tagger(base)
    assert cli(params, "push", str(base / "corpus.txt"), "--sample", "3", "--model", bundle) == 0
    assert cli(params, "push", str(base / "corpus.txt")) == 0
    assert cli(params, "push", str(base / "corpus.txt")) == 0
    runs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["imported"] for r in runs] == [3, len(CORPUS) - 3, 0]
    assert runs[2]["already_in_project"] == len(CORPUS)
    project = project_of(labelstudio)
    tasks = list(sdk(labelstudio).tasks.list(project=project.id, fields="all"))
    with_predictions = [t for t in tasks if t.predictions]
    assert len(tasks) == len(CORPUS) and len(with_predictions) == 3
    for task in with_predictions:
        (pred,) = task.predictions
        assert pred.model_version == "run-0123"
        for item in pred.result:
            value = item["value"]
            assert task.data["text"][value["start"]:value["end"]] == value["text"]


def tiny_tagger(base: Path) -> str:
    """An untrained tagger bundle (fixed seed) with its run.json: enough to test plumbing."""
    from pipeline.train.tagging import rebuild, save_bundle

    torch.manual_seed(0)
    hp = {"word_dim": 8, "char_dim": 4, "char_filters": 4, "char_window": 3, "hidden": 8,
          "dropout": 0.0, "crf": False, "char_cnn": True, "lowercase": True}
    bundle = rebuild(["<pad>", "<unk>", "ada"], ["<pad>", "<unk>", "a"],
                     ["B-PER", "I-PER", "O"], hp)
    path = base / "tagger" / "model.pt"
    save_bundle(path, bundle)
    (path.parent / "run.json").write_text(json.dumps({"run_id": "run-0123"}))
    return str(path)


def annotate(live) -> None:
    """Admin annotates everything per CORPUS; expert2 repeats, differs, or cancels."""
    ls = sdk(live)
    project = project_of(live)
    expert = ls.users.create(email=EXPERT, username="expert2", password=os.urandom(8).hex())
    admin = ls.users.whoami()
    by_text = {t.data["text"]: t.id for t in ls.tasks.list(project=project.id)}
    for i, (text, gold, other) in enumerate(CORPUS):
        task = by_text[text]
        if gold == "none":
            continue
        ls.annotations.create(
            id=task, completed_by=admin.id, lead_time=3.0, ground_truth=i == 0,
            was_cancelled=gold is None, result=[region(text, *s) for s in gold or []])
        if gold is not None:
            other = gold if other == "same" else other
            ls.annotations.create(
                id=task, completed_by=expert.id, lead_time=4.0, was_cancelled=other is None,
                result=[region(text, *s) for s in other or []])


def test_two_annotators_export_convert_and_agree(labelstudio, work, capsys):
    base, params = work
    annotate(labelstudio)
    out = base / "export.json"
    out.write_text("[]\n")
    assert cli(params, "export") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tasks"] == len(CORPUS) and summary["sha256"] == sha256_file(out)
    assert (base / "export.json.sha256").read_text().split()[0] == summary["sha256"]

    tasks = read_snapshot(out)
    first = next(t for t in tasks if t["annotations"])
    assert first["annotations"][0]["completed_by"]["email"] in (USERNAME, EXPERT)
    cfg = load(params)["annotation"]
    sentences, report = convert_snapshot(out, cfg["labels"], cfg["conversion"])
    assert report.tasks_in == len(CORPUS)
    assert report.tasks_in == report.prepared + sum(report.skipped.values())
    assert report.prepared == 6
    assert dict(report.skipped) == {"no annotations": 1, "all annotations cancelled": 1}
    assert report.cancelled_annotations == 2
    assert dict(report.adjudicated_by) == {"ground_truth": 1, "majority": 2, "first": 2,
                                           "single": 1}
    # the adjudicated gold is the admin's (ground truth, agreement, or first on ties)
    gold = {t: g for t, g, _ in CORPUS}
    for sentence in sentences:
        text = sentence.meta["text"]
        tokens = [text[s:e] for s, e in tokenize(text)]
        assert sentence.tokens == tokens
        expected = ["O"] * len(tokens)
        for span, label in gold[text]:
            n = len(tokenize(span))
            first_token = len(tokenize(text[:text.index(span)]))
            expected[first_token:first_token + n] = [f"B-{label}"] + [f"I-{label}"] * (n - 1)
        assert sentence.tags == expected, text

    assert cli(params, "agreement") == 0
    capsys.readouterr()
    result = json.loads((base / "reports" / "agreement.json").read_text())
    assert result["tasks_with_multiple_annotators"] == 5
    pair = result["pairwise"][f"ref:{USERNAME}, pred:{EXPERT}"]
    assert pair["num_common_tasks"] == 5
    scores = {lab: (s["precision"], s["recall"], s["f1"]) for lab, s in pair["labels"].items()}
    # by hand: PER 6/6 matched; ORG ref {US Navy, IBM, Cambridge}, pred {Navy, Cambridge};
    # LOC ref {London, Paris, Zürich}, pred {London, IBM, Paris, Zürich}
    assert scores["PER"] == pytest.approx((1.0, 1.0, 1.0))
    assert scores["ORG"] == pytest.approx((1 / 2, 1 / 3, 0.4))
    assert scores["LOC"] == pytest.approx((3 / 4, 1.0, 6 / 7))
    # tokens of the 5 common tasks: 8 + 8 + 7 + 6 + 8 = 37; they differ on "US" (B-ORG / O),
    # "Navy" (I-ORG / B-ORG) and "IBM" (B-ORG / B-LOC)
    ref = {"B-PER": 6, "I-PER": 4, "B-ORG": 3, "I-ORG": 1, "B-LOC": 3, "O": 20}
    pred = {"B-PER": 6, "I-PER": 4, "B-ORG": 2, "I-ORG": 0, "B-LOC": 4, "O": 21}
    p_o = 34 / 37
    p_e = sum(ref[k] * pred[k] for k in ref) / 37 ** 2
    assert pair["token_kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))
    assert {d["sent_id"] for d in pair["disagreements"]} == {
        f"task-{t['id']}" for t in tasks if t["data"]["text"] in (CORPUS[1][0], CORPUS[2][0])}
    md = (base / "reports" / "agreement.md").read_text()
    assert "| ORG | 0.500 | 0.333 | 0.400 | 3 | 2 | 1 |" in md

    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    (run,) = mlflow.search_runs(experiment_names=["agreement"], output_format="list")
    assert run.data.metrics[metric_key(f"ref:{USERNAME}, pred:{EXPERT}", "ORG", "f1")
                            ] == pytest.approx(0.4)


def test_errors_are_clear_and_the_key_never_leaks(labelstudio, work, capsys, monkeypatch):
    base, params = work
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "wrong-key-" + labelstudio.api_key[:6])
    assert cli(params, "setup") == 1
    assert "401 unauthorized: the API key was rejected" in capsys.readouterr().err
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", labelstudio.api_key)
    snapshot = base / "export.json"
    before = snapshot.read_bytes()
    missing = base / "missing.yaml"
    cfg = yaml.safe_load(params.read_text())
    cfg["annotation"]["exports"]["uner_ewt_dev"]["project"] = "No such project"
    missing.write_text(yaml.safe_dump(cfg))
    assert cli(missing, "export") == 1
    assert "no project titled 'No such project'" in capsys.readouterr().err
    assert snapshot.read_bytes() == before  # a failed export leaves the snapshot as it was

    # everything written by the tests and the server: snapshot, sidecar, reports, MLflow
    # store, server log, and what the commands printed
    written = [p for p in [*base.rglob("*"), *labelstudio.log.parent.glob("*.log")]
               if p.is_file()]
    assert len(written) > 5
    secret = labelstudio.api_key.encode()
    assert [p for p in written if secret in p.read_bytes()] == []
    out = capsys.readouterr()
    assert labelstudio.api_key not in out.out + out.err


def test_serve_starts_and_stops_cleanly_on_sigterm(labelstudio_template, work, tmp_path):
    base, params = work
    data_dir = tmp_path / "served"
    shutil.copytree(labelstudio_template.data_dir, data_dir)
    (data_dir / "api-key").write_text(labelstudio_template.api_key + "\n")
    (data_dir / "admin-password").write_text(labelstudio_template.password + "\n")
    port = server.free_port("127.0.0.1")
    env = {"PATH": os.environ["PATH"], "PIPELINE_PARAMS": str(params), "HOME": str(tmp_path)}
    if "LABEL_STUDIO_BIN" in os.environ:
        env["LABEL_STUDIO_BIN"] = os.environ["LABEL_STUDIO_BIN"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "annotation", "serve", "--data-dir", str(data_dir),
         "--port", str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert banner.startswith(f"Label Studio is up at http://127.0.0.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            assert answer.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    assert labelstudio_template.api_key not in banner + proc.stdout.read()
