"""Tagging metrics on hand-worked cases, and the confusion figure."""

from __future__ import annotations

import pytest

from pipeline.evaluate.tagging import confusion_figure, tagging_metrics

GOLD = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "O"], ["O", "O"],
        ["B-PER", "O"]]
PRED = [["B-PER", "O", "O", "B-LOC", "O"],  # PER cut short: a miss and a false positive
        ["B-ORG", "I-ORG", "O"],  # exact
        ["B-LOC", "O"],  # spurious LOC
        ["I-PER", "O"]]  # strict IOB2: an entity cannot start with I-, so PER is missed


def test_entity_scores_worked_by_hand():
    m = tagging_metrics(GOLD, PRED, "iob2")
    # gold: PER, LOC, ORG, PER (4); predicted: PER(short), LOC, ORG, LOC (4); right: LOC, ORG
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(9 / 12)
    assert m["per_type"] == {
        "LOC": {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1},
        "ORG": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
        "PER": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2},
    }


def test_perfect_and_empty_predictions():
    assert tagging_metrics(GOLD, GOLD, "iob2")["f1"] == 1.0
    none = [["O"] * len(g) for g in GOLD]
    m = tagging_metrics(GOLD, none, "iob2")
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)


def test_pos_scheme_has_accuracy_only():
    m = tagging_metrics([["DET", "NOUN"], ["VERB"]], [["DET", "VERB"], ["VERB"]], "tags")
    assert m == {"accuracy": pytest.approx(2 / 3)}


def test_misaligned_input_is_refused():
    with pytest.raises(ValueError, match="sentence 1: 1 gold tags but 2 predicted"):
        tagging_metrics([["O"], ["O"]], [["O"], ["O", "O"]], "tags")
    with pytest.raises(ValueError, match="scheme"):
        tagging_metrics([["O"]], [["O"]], "bio")


def test_confusion_figure_is_a_deterministic_png(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "sub" / "b.png"
    confusion_figure(GOLD, PRED, a)
    confusion_figure(GOLD, PRED, b)
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert a.read_bytes() == b.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
