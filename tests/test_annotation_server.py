"""The annotators' workflow against a real Label Studio: setup, push (with pre-annotations),
two annotators, export, conversion, agreement, serve; errors; the key never leaks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import torch
import yaml
from label_studio_sdk import LabelStudio

from annotation import server
from annotation.agreement import metric_key
from annotation.cli import main
from annotation.client import Client, LabelStudioError
from annotation.convert import tokenize
from annotation.labeling import CONFIG_PATH
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
    cfg["annotation"]["exports"]["uner_ewt_dev"].update(project=TITLE,
                                                        snapshot=str(base / "export.json"))
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
          "dropout": 0.0, "crf": False, "char_encoder": "cnn", "lowercase": True,
          "char_hidden": 4, "layers": 1, "residual": False, "lexical_dim": 0,
          "lexical_bins": 4}
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


class FaultyProxy:
    """A reverse proxy in front of the real server that injects what a healthy local Label
    Studio never does: an answer lost after the request landed ("lose": forwarded, then the
    connection is held past the client's timeout and dropped) and rate limiting ("429:N":
    answered 429 with Retry-After N, not forwarded). Everything else passes through."""

    def __init__(self, target: str, hold_s: float):
        self.faults: list[tuple[str, str, str]] = []  # (method, path substring, action)
        self.seen: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.append((self.command, self.path))
                action = proxy.take(self.command, self.path)
                if action and action.startswith("429:"):
                    self.send_response(429)
                    self.send_header("Retry-After", action[4:])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                answer = httpx.request(self.command, target + self.path, headers=headers,
                                       content=body, timeout=60)
                if action == "lose":
                    time.sleep(hold_s)
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                for k, v in answer.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                         "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any  # noqa: N815

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def take(self, method: str, path: str) -> str | None:
        for i, (m, part, action) in enumerate(self.faults):
            if m == method and part in path:
                del self.faults[i]
                return action
        return None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy(labelstudio):
    p = FaultyProxy(labelstudio.url, hold_s=4)
    yield p
    p.close()


RETRYING = {"retries": 2, "timeout_s": 3, "backoff_s": 0.1, "export_timeout_s": 30,
            "retry_after_max_s": 5}


def test_an_import_whose_answer_was_lost_lands_once(labelstudio, proxy):
    direct = Client(labelstudio.url, labelstudio.api_key, RETRYING)
    fields = {"label_config": CONFIG_PATH.read_text(encoding="utf-8")}
    project_id, _ = direct.ensure_project("Lost answer project", fields)
    via_proxy = Client(proxy.url, labelstudio.api_key, RETRYING)
    texts = ["One lost answer .", "Two lost answers .", "Three ."]
    proxy.faults.append(("POST", "/import", "lose"))
    ids = via_proxy.import_tasks(project_id, [{"data": {"text": t}} for t in texts], batch=10)
    held = direct._tasks_by_text(project_id)
    assert sorted(held) == sorted(texts)  # each once: the lost import is not sent again
    assert sorted(ids) == sorted(held.values())
    assert [m for m, p in proxy.seen if "/import" in p] == ["POST"]
    # a second batch after a lost answer: only the texts the server lacks are sent
    proxy.faults.append(("POST", "/import", "lose"))
    more = via_proxy.import_tasks(project_id, [{"data": {"text": "Four ."}}], batch=10)
    assert len(more) == 1 and len(direct._tasks_by_text(project_id)) == 4


def test_rate_limits_are_waited_for_within_their_bound(labelstudio, proxy):
    client = Client(proxy.url, labelstudio.api_key, RETRYING)
    proxy.faults.append(("GET", "/api/projects", "429:2"))
    start = time.monotonic()
    assert client.find_project("No project has this title") is None
    assert time.monotonic() - start >= 2
    assert [p for _, p in proxy.seen].count(proxy.seen[0][1]) == 2  # refused, then answered
    proxy.faults.append(("GET", "/api/projects", "429:120"))
    with pytest.raises(LabelStudioError, match=r"wait 120 s \(429 Retry-After\), more than "
                                               r"annotation.server.retry_after_max_s = 5"):
        client.find_project("No project has this title")
