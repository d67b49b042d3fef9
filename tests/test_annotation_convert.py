"""BIO -> Label Studio -> BIO is exact; offsets are code points; snapshot bytes are stable."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation.cli import main
from annotation.convert import (
    BadTask,
    sentences_to_tasks,
    tasks_to_sentences,
    tokenize,
)
from annotation.snapshot import read_snapshot
from annotation.uner import read_uner
from pipeline.data.sentences import Sentence

UNER_DEV = Path(__file__).resolve().parents[2] / "shared/data/uner-ewt/en_ewt-ud-dev.iob2"
SNAPSHOT = Path(__file__).resolve().parents[1] / "data/snapshots/uner_ewt_dev.json"
LABELS = ["PER", "ORG", "LOC"]
POLICY = {"span_policy": "snap", "on_bad_task": "error", "adjudication": {"annotator_priority": []}}


def roundtrip(sentences: list[Sentence]) -> list[Sentence]:
    back, report = tasks_to_sentences(sentences_to_tasks(sentences), LABELS, POLICY)
    assert report.balanced() and report.prepared == len(sentences)
    return back


def assert_same(a: list[Sentence], b: list[Sentence]) -> None:
    assert [(s.id, s.tokens, s.tags) for s in a] == [(s.id, s.tokens, s.tags) for s in b]


@pytest.mark.skipif(not UNER_DEV.exists(), reason=f"{UNER_DEV} not present")
def test_uner_dev_roundtrip_is_exact():
    sentences = read_uner(UNER_DEV)
    assert len(sentences) == 2001
    assert_same(sentences, roundtrip(sentences))


def test_committed_snapshot_converts_completely():
    tasks = read_snapshot(SNAPSHOT)
    sentences, report = tasks_to_sentences(tasks, LABELS, POLICY)
    assert report.tasks_in == len(tasks) == 2001
    assert report.tasks_in == report.prepared + sum(report.skipped.values())
    assert report.prepared == 2001 and not report.skipped
    entities = sum(t.startswith("B-") for s in sentences for t in s.tags)
    assert entities == 966  # en_ewt-ud-dev.stats: LOC 399 + ORG 224 + PER 343


def test_committed_snapshot_survives_another_round_trip():
    sentences, _ = tasks_to_sentences(read_snapshot(SNAPSHOT), LABELS, POLICY)
    assert_same(sentences, roundtrip(sentences))


@pytest.mark.skipif(not UNER_DEV.exists(), reason=f"{UNER_DEV} not present")
def test_snapshot_command_is_deterministic(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out in (a, b):
        assert main(["snapshot-iob2", "--iob2", str(UNER_DEV), "--out", str(out)]) == 0
    assert a.read_bytes() == b.read_bytes() == SNAPSHOT.read_bytes()


def test_non_ascii_and_emoji_offsets_are_code_points():
    sentences = [
        Sentence("s1", ["Zoë", "met", "Ångström", "in", "Zürich", "🙂", "."],
                 ["B-PER", "O", "B-PER", "O", "B-LOC", "O", "O"],
                 {"text": "Zoë met Ångström in Zürich 🙂."}),
        Sentence("s2", ["👩‍🔬", "Marie", "Curie", "visited", "東京", "大学"],
                 ["O", "B-PER", "I-PER", "O", "B-ORG", "I-ORG"]),
    ]
    tasks = sentences_to_tasks(sentences)
    text = tasks[0]["data"]["text"]
    assert text == "Zoë met Ångström in Zürich 🙂."
    region = tasks[0]["annotations"][0]["result"][2]["value"]
    assert (region["start"], region["end"], region["text"]) == (20, 26, "Zürich")
    second = tasks[1]["annotations"][0]["result"][0]["value"]
    assert tasks[1]["data"]["text"][second["start"]:second["end"]] == "Marie Curie"
    assert second["start"] == len("👩‍🔬 ")  # 4 code points: the ZWJ sequence is 3
    assert_same(sentences, roundtrip(sentences))


def test_stray_inside_tag_becomes_an_entity_start():
    s = Sentence("s", ["a", "b", "c"], ["I-PER", "I-PER", "O"])
    assert roundtrip([s])[0].tags == ["B-PER", "I-PER", "O"]


def task(text: str, spans: list[tuple[int, int, str]], task_id: int = 1, **ann) -> dict:
    result = [{"id": f"r{i}", "from_name": "label", "to_name": "text", "type": "labels",
               "value": {"start": s, "end": e, "text": text[s:e], "labels": [lab]}}
              for i, (s, e, lab) in enumerate(spans)]
    return {"id": task_id, "data": {"text": text},
            "annotations": [{"id": task_id, "completed_by": 1, "result": result} | ann]}


def test_fallback_tokenizer_splits_punctuation():
    text = "Hello, Dr. O'Neil-Smith (NYC)!"
    assert [text[s:e] for s, e in tokenize(text)] == [
        "Hello", ",", "Dr", ".", "O'Neil-Smith", "(", "NYC", ")", "!"]


def test_span_policy_snap_and_reject():
    t = task("Visit New York now", [(7, 12, "LOC")])  # "ew Yo": inside two tokens
    snapped, report = tasks_to_sentences([t], LABELS, POLICY)
    assert snapped[0].tags == ["O", "B-LOC", "I-LOC", "O"] and report.snapped_spans == 1
    rejected, report = tasks_to_sentences([t], LABELS, POLICY | {"span_policy": "reject"})
    assert rejected[0].tags == ["O"] * 4 and report.rejected_spans == 1


def test_cancelled_and_empty_tasks_are_counted():
    tasks = [
        task("A b", [(0, 1, "PER")], 1),
        task("A b", [], 2, was_cancelled=True),
        {"id": 3, "data": {"text": "no annotations"}, "annotations": []},
    ]
    sentences, report = tasks_to_sentences(tasks, LABELS, POLICY)
    assert [s.id for s in sentences] == ["task-1"]
    assert report.cancelled_annotations == 1
    assert dict(report.skipped) == {"all annotations cancelled": 1, "no annotations": 1}
    assert report.balanced()


def test_bad_task_error_names_task_and_problem():
    with pytest.raises(BadTask, match=r"task 7: .*unknown label 'MISC'"):
        tasks_to_sentences([task("A b", [(0, 1, "MISC")], 7)], LABELS, POLICY)
