"""Agreement figures against values worked out by hand; adjudication order."""

from __future__ import annotations

import pytest

from annotation.adjudicate import adjudicate
from annotation.agreement import agreement, to_markdown

LABELS = ["PER", "ORG", "LOC"]
POLICY = {"span_policy": "snap", "on_bad_task": "error",
          "adjudication": {"annotator_priority": ["bob"]}}
TEXT = "Ada met Bob at IBM in Paris ."  # tokens: Ada met Bob at IBM in Paris .


def ann(ann_id: int, who: str, spans, **extra) -> dict:
    result = [{"id": f"r{ann_id}{i}", "from_name": "label", "to_name": "text", "type": "labels",
               "value": {"start": s, "end": e, "text": TEXT[s:e], "labels": [lab]}}
              for i, (s, e, lab) in enumerate(spans)]
    return {"id": ann_id, "completed_by": {"id": ann_id, "email": f"{who}@example.com"},
            "result": result, "was_cancelled": False, "ground_truth": False} | extra


ADA, BOB, IBM, PARIS = (0, 3, "PER"), (8, 11, "PER"), (15, 18, "ORG"), (22, 27, "LOC")


def tasks() -> list[dict]:
    return [
        # alice: Ada PER, IBM ORG, Paris LOC; bob: Ada PER, IBM LOC (wrong), Paris LOC, Bob PER
        {"id": 1, "data": {"text": TEXT}, "annotations": [
            ann(11, "alice", [ADA, IBM, PARIS]),
            ann(12, "bob", [ADA, (15, 18, "LOC"), PARIS, BOB])]},
        # both agree: Ada PER; carol cancelled (left out, counted)
        {"id": 2, "data": {"text": TEXT}, "annotations": [
            ann(21, "alice", [ADA]), ann(22, "bob", [ADA]),
            ann(23, "carol", [], was_cancelled=True)]},
        # one annotator only: not in the pairwise figures
        {"id": 3, "data": {"text": TEXT}, "annotations": [ann(31, "alice", [BOB])]},
    ]


def test_pairwise_scores_match_hand_computation():
    result = agreement(tasks(), LABELS, POLICY)
    assert result["tasks_with_multiple_annotators"] == 2
    assert result["conversion"]["cancelled_annotations"] == 1
    pair = result["pairwise"]["ref:alice@example.com, pred:bob@example.com"]
    assert pair["num_common_tasks"] == 2
    # PER: ref {Ada, Ada}; pred {Ada, Bob, Ada}: matched 2 -> P 2/3, R 1, F1 0.8
    per = pair["labels"]["PER"]
    assert (per["precision"], per["recall"], per["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    # ORG: ref {IBM}, pred {} -> P undefined, R 0
    assert pair["labels"]["ORG"]["precision"] is None and pair["labels"]["ORG"]["recall"] == 0
    # LOC: ref {Paris}; pred {IBM, Paris} -> P 1/2, R 1, F1 2/3
    loc = pair["labels"]["LOC"]
    assert (loc["precision"], loc["recall"], loc["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    # tokens (16): ref  B-PER O O   O B-ORG O B-LOC O | B-PER O x7
    #              pred B-PER O B-PER O B-LOC O B-LOC O | B-PER O x7
    # p_o = 14/16; ref marginals: B-PER 2, B-ORG 1, B-LOC 1, O 12;
    # pred: B-PER 3, B-LOC 2, O 11 -> p_e = (2*3 + 1*2 + 12*11) / 256 = 140/256
    p_o, p_e = 14 / 16, 140 / 256
    assert pair["token_kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))
    (dis,) = pair["disagreements"]
    assert dis["task_id"] == 1
    assert [(s["text"], s["label"]) for s in dis["ref_only"]] == [("IBM", "ORG")]
    assert [(s["text"], s["label"]) for s in dis["pred_only"]] == [("Bob", "PER"), ("IBM", "LOC")]
    md = to_markdown(result, "x.json", 10)
    assert "| PER | 0.667 | 1.000 | 0.800 | 2 | 3 | 2 |" in md


def cand(ann_id, who, tags, **extra):
    return {"annotation": {"id": ann_id} | extra, "annotator": who, "tags": tags}


def test_adjudication_order():
    a, b, c = ["B-PER"], ["O"], ["B-LOC"]
    gt = cand(3, "z@x", c, ground_truth=True)
    assert adjudicate([cand(1, "x@x", a), cand(2, "y@x", a), gt], [])[1] == "ground_truth"
    chosen, rule = adjudicate([cand(1, "x@x", a), cand(2, "y@x", b), cand(3, "z@x", b)], [])
    assert rule == "majority" and chosen["tags"] == b
    chosen, rule = adjudicate([cand(1, "x@x", a), cand(2, "bob@x", b)], ["bob"])
    assert rule == "priority" and chosen["annotator"] == "bob@x"
    chosen, rule = adjudicate([cand(5, "x@x", a), cand(2, "y@x", b)], [])
    assert rule == "first" and chosen["annotation"]["id"] == 2
    assert adjudicate([cand(1, "x@x", a)], [])[1] == "single"
