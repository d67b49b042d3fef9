"""Both command-line tools answer a wrong argument in one line on stderr and exit non-zero:
a name params does not declare, a seed out of range, a run id the MLflow store does not hold,
a tracking or Label Studio server that does not answer, a file that is missing or a
directory, a corpus a stage cannot split. Nothing on stdout, no traceback unless asked
(--debug, PIPELINE_DEBUG=1), and nothing made before is touched (issue #30)."""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from annotation import cli as annotation_cli
from pipeline import cli, config
from pipeline.config import ConfigError
from pipeline.io import BadInput
from pipeline.train.tagging import load_bundle

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer(main: Callable, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and the one line on stderr; stdout must stay empty."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's answer
        rc = e.code
    out, err = capsys.readouterr()
    assert out == "", out
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return rc, err


@pytest.fixture(autouse=True)
def params(monkeypatch):
    monkeypatch.setenv(config.ENV_VAR, str(PARAMS))
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)


@pytest.mark.parametrize("argv, line", [
    (["prepare-clustering", "--dataset", "digit"],
     r"params\.yaml: clustering\.datasets has no 'digit'; did you mean 'digits'\?"),
    (["train-tagger", "--corpus", "ewt_pos_dev", "--model", "bilstm_sofmax", "--seed", "0"],
     r"tagging\.variants has no 'bilstm_sofmax'; did you mean 'bilstm_softmax'\?"),
    (["evaluate-clustering", "--dataset", "digits", "--model", "kmean", "--seed", "0"],
     r"clustering\.methods has no 'kmean'; did you mean 'kmeans'\?"),
    (["prepare-tagging", "--corpus", "nope"], r"tagging\.corpora has no 'nope'; it has \["),
    (["export", "--name", "nope"], r"annotation\.exports has no 'nope'"),
    (["fetch", "--group", "tagging", "--name", "ewt_pos_dev", "--key", "train"],
     r"tagging\.corpora\.ewt_pos_dev\.train is not a \{url:, sha256:\} entry to fetch"),
])
def test_a_name_params_does_not_declare_is_named(capsys, argv, line):
    """These were KeyErrors with a traceback from deep inside a stage."""
    rc, err = answer(cli.main, argv, capsys)
    assert rc == 1 and err.startswith("error: ") and re.search(line, err), err


@pytest.mark.parametrize("argv, line", [
    (["pretrain", "--dataset", "digits", "--seed", "-1"],
     "argument --seed: '-1' is not an integer from 0 to 4294967295"),
    (["pretrain", "--dataset", "digits", "--seed", "1.5"], "argument --seed: '1.5' is not"),
    (["fetch", "--group", "clusters", "--name", "x", "--key", "y"],
     "argument --group: invalid choice: 'clusters'"),
    (["prepare-clustering"], "the following arguments are required: --dataset"),
    (["nosuch"], "argument command: invalid choice: 'nosuch'"),
    (["golden", "--device", "gpu"], "argument --device: 'gpu' is not cpu, cuda or cuda:<index>"),
])
def test_a_wrong_argument_is_one_line_not_a_usage_block(capsys, argv, line):
    rc, err = answer(cli.main, argv, capsys)
    assert rc == 2 and err.startswith("python -m pipeline") and line in err


def test_replicate_an_id_the_store_does_not_hold(capsys, isolated_mlflow):
    """Was MlflowException with a full traceback."""
    rc, err = answer(cli.main, ["replicate", "0123456789abcdef"], capsys)
    assert rc == 1
    assert err == f"error: MLflow store {isolated_mlflow}: Run with id=0123456789abcdef not found\n"


def test_replicate_a_run_no_stage_made(tmp_path, capsys, isolated_mlflow):
    client = MlflowClient(isolated_mlflow)
    run = client.create_run(client.create_experiment("other", tmp_path.as_uri()))
    rc, err = answer(cli.main, ["replicate", run.info.run_id], capsys)
    assert rc == 1
    assert f"run {run.info.run_id} in {isolated_mlflow}: not a pipeline job's run" in err


def test_replicate_against_a_tracking_server_that_does_not_answer(capsys, monkeypatch):
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own backoff: minutes
    rc, err = answer(cli.main, ["replicate", "0123456789abcdef"], capsys)
    assert rc == 1
    assert err.startswith(f"error: MLflow store {uri} does not answer: API request to {uri}")


def test_a_tool_that_failed_and_said_why_is_named_after_its_own_words(capfd, monkeypatch):
    """dvc names the remote itself; the traceback of CalledProcessError came after it."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    assert cli.main(["dvc-pull", "--remote", "nope"]) == 1
    out, err = capfd.readouterr()
    assert "nope" in err.splitlines()[0]  # dvc's own line
    assert re.fullmatch(r"error: `dvc pull --quiet --remote nope` failed \(exit \d+\)",
                        err.splitlines()[-1])


def test_debug_shows_the_traceback(capsys, monkeypatch):
    argv = ["prepare-clustering", "--dataset", "nope"]
    with pytest.raises(ConfigError, match="has no 'nope'"):
        cli.main(["--debug", *argv])
    monkeypatch.setenv("PIPELINE_DEBUG", "1")
    with pytest.raises(ConfigError, match="has no 'nope'"):
        cli.main(argv)


# --- prepare: a corpus that reads but cannot be split; what was prepared before stays

def tiny_project(tmp_path: Path, monkeypatch, corpus: dict) -> Path:
    cfg = config.drop_nulls(config.deep_merge(config.read_yaml(PARAMS), {"tagging": {
        "corpora": {"uner_ewt_dev": None, "ewt_pos_dev": None, "tiny": corpus}}}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv(config.ENV_VAR, str(tmp_path / "params.yaml"))
    monkeypatch.chdir(tmp_path)
    prepared = tmp_path / "data/prepared/tagging/tiny"
    prepared.mkdir(parents=True)
    (prepared / "train.jsonl").write_text("earlier\n")
    return prepared


@pytest.mark.parametrize("corpus, files, line", [
    ({"format": "iob2", "train": "tiny.iob2"}, {"tiny.iob2": ""},
     r"error: tiny\.iob2: no sentences \(an empty file\?\)\n"),
    ({"format": "iob2", "train": "tiny.iob2"}, {"tiny.iob2": "1\tHi\tO\n"},
     r"error: tiny\.iob2: its 1 sentences leave split '(dev|test)' empty; give more "
     r"sentences, a (dev|test): file or a larger tagging\.split\.(dev|test)\n"),
    ({"format": "label_studio", "export": "uner_ewt_dev"},
     {"data/annotations/uner_ewt_dev.json": "[]\n"},
     r"error: data/annotations/uner_ewt_dev\.json: no task left to learn from \(0 tasks"),
])
def test_a_corpus_that_cannot_be_split_names_its_file(tmp_path, monkeypatch, capsys, corpus,
                                                      files, line):
    """Was "corpus tiny: split 'train' is empty", and a train.jsonl written over before the
    empty split was found."""
    prepared = tiny_project(tmp_path, monkeypatch, corpus)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    rc, err = answer(cli.main, ["prepare-tagging", "--corpus", "tiny"], capsys)
    assert rc == 1 and re.match(line, err), err
    assert (prepared / "train.jsonl").read_text() == "earlier\n"
    assert sorted(p.name for p in prepared.iterdir()) == ["train.jsonl"]


# --- python -m annotation

@pytest.mark.parametrize("argv, line", [
    (["--params", "missing.yaml", "labeling-config", "--check"],
     "error: missing.yaml: cannot read (No such file or directory)\n"),
    (["--params", "{tmp}", "labeling-config", "--check"],
     "error: {tmp}: cannot read (Is a directory)\n"),
    (["push", "{tmp}/none.txt", "--format", "text"],
     "error: [Errno 2] No such file or directory: '{tmp}/none.txt'\n"),
    (["push", "{tmp}", "--format", "text"], "error: [Errno 21] Is a directory: '{tmp}'\n"),
    (["agreement", "--export", "nope", "--no-mlflow"],
     "error: params: annotation.exports has ['uner_ewt_dev']; pick one with --export "
     "(got 'nope')\n"),
    (["agreement", "--snapshot", "{tmp}", "--no-mlflow"],
     "error: [Errno 21] Is a directory: '{tmp}'\n"),
])
def test_annotation_wrong_files_and_keys_are_one_line(tmp_path, capsys, argv, line):
    argv = [a.format(tmp=tmp_path) for a in argv]
    rc, err = answer(annotation_cli.main, argv, capsys)
    assert rc == 1 and err == line.format(tmp=tmp_path)


@pytest.mark.parametrize("argv, line", [
    (["push", "x.txt", "--sample", "-2"], "argument --sample: '-2' is not an integer of at "
                                          "least 1"),
    (["serve", "--port", "70000"], "argument --port: '70000' is not an integer from 1 to 65535"),
    (["push"], "the following arguments are required: corpus"),
])
def test_annotation_wrong_arguments_are_one_line(capsys, argv, line):
    """--sample -2 silently pushed all but the last two texts."""
    rc, err = answer(annotation_cli.main, argv, capsys)
    assert rc == 2 and err.startswith("python -m annotation") and line in err


def test_annotation_against_a_server_that_does_not_answer(tmp_path, monkeypatch, capsys):
    cfg = config.deep_merge(config.read_yaml(PARAMS),
                            {"annotation": {"server": {"retries": 0, "timeout_s": 2}}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cfg))
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-key-never-printed")
    rc, err = answer(annotation_cli.main, ["--params", str(tmp_path / "params.yaml"), "setup"],
                     capsys)
    assert rc == 1 and err.startswith(f"error: Label Studio at {url}") and "a-key" not in err


def test_annotation_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        annotation_cli.main(["--debug", "--params", str(tmp_path / "missing.yaml"), "setup"])


@pytest.mark.parametrize("content", [
    b"", b"hello, not a model\n", "half",
    {"format": "something else"}, torch.zeros(3),
], ids=["empty", "text", "truncated-bundle", "other-dict", "tensor"])
def test_a_file_that_is_not_a_tagger_bundle_is_named(tmp_path, content):
    """`push --model <file>` and the evaluate stage: torch.load's KeyError, EOFError or
    UnpicklingError (a traceback) became one line naming the file."""
    path = tmp_path / "model.pt"
    if content == "half":
        torch.save({"format": "x", "weights": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:2000])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(BadInput, match=rf"{path}: not a tagger bundle"):
        load_bundle(path)


# --- a command's result on stdout, what is for people on stderr

def test_replicate_downloads_draw_no_progress_bars(tmp_path, monkeypatch, capfd,
                                                   isolated_mlflow):
    """MLflow drew a bar per artifact download between replicate's verdicts; the same
    download with MLflow's default client shows the bar, so the check can fail."""
    from pipeline import replicate

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    (tmp_path / "a.txt").write_text("x" * 100)
    client = MlflowClient(isolated_mlflow)
    run = client.create_run(client.create_experiment("job", (tmp_path / "store").as_uri()))
    for i in range(3):
        client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"), f"d{i}")
    client.download_artifacts(run.info.run_id, "", str(tmp_path))
    assert "Downloading artifacts" in capfd.readouterr().err
    hashes = replicate._artifact_hashes(replicate._client(isolated_mlflow), run.info.run_id)
    assert sorted(hashes) == ["d0/a.txt", "d1/a.txt", "d2/a.txt"]
    assert capfd.readouterr() == ("", "")
