"""Malformed exports: a clear error naming file, task and problem, or a counted skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotation.convert import sentences_to_tasks
from annotation.snapshot import convert_snapshot, read_snapshot
from pipeline.data.sentences import Sentence
from pipeline.io import BadInput

BAD = Path(__file__).parent / "data" / "bad_exports"
LABELS = ["PER", "ORG", "LOC"]
ERROR = {"span_policy": "snap", "on_bad_task": "error", "adjudication": {"annotator_priority": []}}
SKIP = ERROR | {"on_bad_task": "skip"}

TASK_PROBLEMS = {
    "missing_result": "task 2: annotation 2 has no result list",
    "unknown_label": "task 2: .*unknown label 'MISC'",
    "negative_offsets": r"task 2: .*offsets \[-3, 12\) outside the text",
    "offsets_past_end": r"task 2: .*offsets \[24, 40\) outside the text",
    "span_text_mismatch": "task 2: .*span text 'Grace Hooper' does not match",
    "overlapping_spans": "task 2: overlapping spans",
    "empty_text": "task 2: empty or missing data.text",
    "duplicate_task_ids": "task 1: duplicate task id",
}


@pytest.mark.parametrize("name", sorted(TASK_PROBLEMS))
def test_bad_task_is_an_error_naming_file_task_and_problem(name):
    path = BAD / f"{name}.json"
    with pytest.raises(ValueError, match=f"{path}: {TASK_PROBLEMS[name]}"):
        convert_snapshot(path, LABELS, ERROR)


@pytest.mark.parametrize("name", sorted(TASK_PROBLEMS))
def test_bad_task_is_skipped_and_counted(name):
    sentences, report = convert_snapshot(BAD / f"{name}.json", LABELS, SKIP)
    assert [s.meta["task_id"] for s in sentences] == ["1"]
    assert sentences[0].tags == ["B-PER", "I-PER", "O", "O", "O", "B-LOC", "O"]
    assert report.tasks_in == 2 and report.prepared == 1 and dict(report.skipped) == {"bad task": 1}
    (skipped,) = report.skipped_tasks
    assert skipped["reason"] == "bad task" and skipped["detail"]


@pytest.mark.parametrize("name, problem", [
    ("truncated", r"bad JSON at line \d+ column \d+"),
    ("non_utf8", r"not UTF-8 at byte \d+"),
])
def test_unreadable_file_names_file_and_place(name, problem):
    path = BAD / f"{name}.json"
    for policy in (ERROR, SKIP):  # a broken file has no task to skip
        with pytest.raises(BadInput, match=f"{path}: {problem}"):
            convert_snapshot(path, LABELS, policy)
    with pytest.raises(BadInput, match=str(path)):
        read_snapshot(path)


def spaced_token(tasks: list) -> None:
    tasks[1]["data"]["token_spans"] = [[0, 7], [8, 10]]  # "Ann saw", "Bo"


def repeated_sentence_id(tasks: list) -> None:
    tasks[1]["data"]["sent_id"] = tasks[0]["data"]["sent_id"]


@pytest.mark.parametrize("damage, problem", [
    (spaced_token, r"task 2: data\.token_spans token \[0, 7\] 'Ann saw' has whitespace inside"),
    (repeated_sentence_id, r"task 2: sentence id 'a' is task 1's already"),
])
def test_a_task_a_tagger_cannot_use_is_refused_or_skipped(tmp_path, damage, problem):
    """Splits are drawn by sentence id, and a token is one word: both went through before."""
    tasks = sentences_to_tasks([Sentence("a", ["Hi", "."], ["O", "O"]),
                                Sentence("b", ["Ann", "saw", "Bo"], ["B-PER", "O", "B-PER"])])
    damage(tasks)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    with pytest.raises(BadInput, match=f"{path}: {problem}"):
        convert_snapshot(path, LABELS, ERROR)
    sentences, report = convert_snapshot(path, LABELS, SKIP)
    assert [s.id for s in sentences] == ["a"] and dict(report.skipped) == {"bad task": 1}
