from collections import Counter

from pipeline.data.sentences import Sentence
from pipeline.data.splits import assign, unit_interval
from pipeline.stages.prepare import split_corpus


def sentences(ids):
    return [Sentence(i, ["a"], ["O"]) for i in ids]


def test_split_of_an_item_never_changes_when_items_are_added():
    old = [f"s{i}" for i in range(500)]
    before = {i: assign(i, 0.1, 0.1) for i in old}
    grown = old + [f"new{i}" for i in range(5000)]
    after = {i: assign(i, 0.1, 0.1) for i in grown}
    assert all(after[i] == before[i] for i in old)


def test_split_fractions_are_roughly_respected():
    counts = Counter(assign(f"id-{i}", 0.1, 0.2) for i in range(20000))
    assert abs(counts["test"] / 20000 - 0.2) < 0.015
    assert abs(counts["dev"] / 20000 - 0.1) < 0.015


def test_unit_interval_is_pinned():
    # Splits published with a results table must never move: this value is the contract
    # (sha256 is not salted like hash(), so it holds on every machine and Python).
    assert unit_interval("answers-20070404104007AAY1Chs_ans-0001") == 0.8811754511178609


def test_given_dev_becomes_the_evaluation_split():
    train, dev = sentences([f"t{i}" for i in range(200)]), sentences(["d1", "d2"])
    out = split_corpus({"train": train, "dev": dev}, dev=0.1, test=0.1)
    assert [s.id for s in out["test"]] == ["d1", "d2"]
    assert out["dev"] and set(s.id for s in out["dev"]) < set(s.id for s in train)
    assert len(out["train"]) + len(out["dev"]) == len(train)


def test_all_three_given_are_used_as_they_are():
    given = {k: sentences([k]) for k in ("train", "dev", "test")}
    assert split_corpus(given, 0.1, 0.1) == given
