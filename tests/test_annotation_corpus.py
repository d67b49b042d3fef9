"""Corpora -> task data, cluster-stratified order, tagger pre-annotations."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from annotation.corpus import guess_format, predictions, read_corpus, stratified_order

INTERFACE = {"from_name": "label", "to_name": "text"}


def test_formats_give_text_and_token_spans(tmp_path):
    (tmp_path / "a.txt").write_text("Hello Paris!\n\n  Bob met Zoë.  \n", encoding="utf-8")
    iob2 = "# sent_id = s1\n# text = Hi Bob.\n1\tHi\tO\n2\tBob\tB-PER\n3\t.\tO\n"
    (tmp_path / "b.iob2").write_text(iob2, encoding="utf-8")
    assert [d["text"] for d in read_corpus(tmp_path / "a.txt", "text")] == [
        "Hello Paris!", "Bob met Zoë."]
    (task,) = read_corpus(tmp_path / "b.iob2", guess_format(tmp_path / "b.iob2"))
    assert task == {"text": "Hi Bob.", "sent_id": "s1", "token_spans": [[0, 2], [3, 6], [6, 7]]}
    export = [{"id": 1, "data": {"text": "Hi Bob."}, "annotations": []}]
    (tmp_path / "c.json").write_text(json.dumps(export))
    assert read_corpus(tmp_path / "c.json", "label_studio") == [
        {"text": "Hi Bob.", "token_spans": [[0, 2], [3, 6], [6, 7]]}]
    assert guess_format("x.conllu.xz") == "conllu"
    with pytest.raises(ValueError, match="cannot tell the format"):
        guess_format("x.csv")


def test_stratified_order_visits_every_cluster_in_turn():
    clusters = ["a"] * 6 + ["b"] * 3 + ["c"]
    order = stratified_order(clusters, seed=0)
    assert sorted(order) == list(range(10))
    assert {clusters[i] for i in order[:3]} == {"a", "b", "c"}
    assert Counter(clusters[i] for i in order[:6]) == {"a": 3, "b": 2, "c": 1}
    assert order == stratified_order(clusters, seed=0) != stratified_order(clusters, seed=1)


def test_predictions_carry_the_run_id_and_valid_spans(tmp_path):
    torch = pytest.importorskip("torch")
    from pipeline.train.tagging import rebuild, save_bundle

    torch.manual_seed(0)
    hp = {"word_dim": 8, "char_dim": 4, "char_filters": 4, "char_window": 3, "hidden": 8,
          "dropout": 0.0, "crf": False, "char_encoder": "cnn", "lowercase": True,
          "char_hidden": 4, "layers": 1, "residual": False, "lexical_dim": 0,
          "lexical_bins": 4}
    save_bundle(tmp_path / "model.pt", rebuild(["<pad>", "<unk>"], ["<pad>", "<unk>"],
                                               ["B-PER", "I-PER", "B-MISC", "O"], hp))
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "abc"}))
    tasks = [{"text": t, "token_spans": [list(s) for s in spans]} for t, spans in [
        ("Zoë met 🙂 Bob .", [(0, 3), (4, 7), (8, 9), (10, 13), (14, 15)]),
        ("Hi", [(0, 2)])]]
    preds = predictions(tmp_path / "model.pt", tasks, ["PER"], INTERFACE, 4)
    assert [p["model_version"] for p in preds] == ["abc", "abc"]
    for task, pred in zip(tasks, preds, strict=True):
        for item in pred["result"]:
            value = item["value"]
            assert value["labels"] == ["PER"]  # MISC is not in the label set
            assert task["text"][value["start"]:value["end"]] == value["text"]
    with pytest.raises(ValueError, match="run.json"):
        (tmp_path / "run.json").unlink()
        predictions(tmp_path / "model.pt", tasks, ["PER"], INTERFACE, 4)
