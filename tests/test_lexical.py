"""Lexical features from the installed spacy-lookups-data tables (no download)."""

from __future__ import annotations

import torch

from pipeline.data import lexical
from pipeline.data.sentences import Sentence
from pipeline.train import tagging as T
from tests.test_tagging_train import HP, corpus, no_log


def test_known_words_have_a_cluster_and_a_frequency_bin_unknown_ones_zero():
    lex = lexical.load()
    assert lex.n_clusters == 999 and len(lex.clusters) > 150_000
    cluster, prob = lex.features("dog", 16)
    assert cluster > 0 and 1 <= prob <= 16
    assert lex.features("cat", 16)[0] == cluster  # the same Brown cluster
    assert lex.features("Paris", 16)[0] == lex.features("London", 16)[0] != cluster
    assert lex.features("dOg", 16) == (cluster, prob)  # not as written: lowercased
    assert lex.features("qzxqzxv", 16) == (0, 0)
    assert lex.features(".", 16)[1] == 16  # the most frequent token: the top bin
    assert lex.features("the", 16)[1] > lex.features("aardvark", 16)[1] >= 1
    assert lex.provenance["package"] == "spacy-lookups-data==1.0.5"
    assert all(len(lex.provenance[f"{t}.sha256"]) == 64 for t in lexical.TABLES)


def test_tagger_with_lexical_features_pads_trains_and_round_trips(tmp_path):
    hp = {**HP, "lexical_dim": 3, "max_epochs": 2}
    bundle, _ = T.train_tagger(corpus(40, 0), corpus(10, 1), "tags", hp, 0,
                               torch.device("cpu"), no_log)
    state = bundle.model.state_dict()
    assert state["lexical.cluster.weight"].shape == (1000, 3)
    sentences = [Sentence("a", ["the", "dog", "qzxqzxv"], ["DET", "NOUN", "X"]),
                 Sentence("b", ["Paris"], ["PROPN"])]
    batch = T.make_batch(T.encode(bundle, sentences, with_tags=False), [0, 1])
    lex = lexical.load()
    assert batch.lexical[0, 2].tolist() == [0, 0]  # unknown word
    assert batch.lexical[1, 0].tolist() == list(lex.features("Paris", 4))
    assert batch.lexical[1, 1].tolist() == [0, 0]  # padding
    model = bundle.model.eval()
    alone = T.make_batch(T.encode(bundle, sentences[1:], with_tags=False), [0])
    assert torch.allclose(model.emissions(alone)[0], model.emissions(batch)[1, :1], atol=1e-5)
    T.save_bundle(tmp_path / "m.pt", bundle)
    test = corpus(8, 4)
    assert T.predict(T.load_bundle(tmp_path / "m.pt"), test, 4) == T.predict(bundle, test, 4)
