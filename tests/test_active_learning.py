"""Query strategies: scores against brute force on a tiny model, rankings whose right answer
is known, determinism, tie-breaking and diversity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from pipeline import active_learning as al
from pipeline.data.sentences import Sentence

SETTINGS = {"score_batch": 4, "bald_passes": 6, "clusters": 3, "kmeans_n_init": 2,
            "candidates": 3}
HP = {"word_dim": 8, "char_dim": 4, "char_filters": 4, "char_window": 3, "hidden": 6,
      "dropout": 0.5, "crf": True, "char_encoder": "cnn", "lowercase": True, "char_hidden": 4,
      "layers": 1, "residual": False, "lexical_dim": 0, "lexical_bins": 4}
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]


def bundle(crf: bool, dropout: float = 0.5, seed: int = 0):
    from pipeline.train.tagging import rebuild

    torch.manual_seed(seed)
    chars = sorted({c for w in WORDS for c in w})
    b = rebuild(["<pad>", "<unk>", *WORDS], ["<pad>", "<unk>", *chars], ["A", "B", "C"],
                {**HP, "crf": crf, "dropout": dropout})
    with torch.no_grad():  # a CRF that prefers some transitions, so paths differ in score
        if crf:
            b.model.crf.transitions.copy_(torch.randn(3, 3))
            b.model.crf.start.copy_(torch.randn(3))
            b.model.crf.end.copy_(torch.randn(3))
    b.model.eval()
    return b


def pool(n: int = 12) -> list[Sentence]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        tokens = [WORDS[j] for j in rng.integers(0, len(WORDS), size=1 + i % 5)]
        out.append(Sentence(f"s{i}", tokens, ["A"] * len(tokens)))
    return out


def brute_force(model, emissions: torch.Tensor) -> tuple[float, torch.Tensor]:
    """log p(best path) and the tag marginals of one sentence, by enumerating every path."""
    crf = model.crf
    length, n_tags = emissions.shape
    paths = torch.tensor(list(itertools.product(range(n_tags), repeat=length)))
    mask = torch.ones(len(paths), length, dtype=torch.bool)
    with torch.no_grad():
        scores = crf.score(emissions.expand(len(paths), -1, -1), paths, mask)
    probs = torch.softmax(scores, dim=0)
    marginals = torch.zeros(length, n_tags)
    for path, p in zip(paths, probs, strict=True):
        marginals[torch.arange(length), path] += p
    return float(scores.max() - torch.logsumexp(scores, 0)), marginals


def test_crf_scores_are_the_best_paths_probability_and_the_true_marginals():
    model = bundle(crf=True).model
    torch.manual_seed(1)
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    with torch.no_grad():
        path, logp, marginals = al._best_and_marginals(model, emissions, mask)
    for b, n in enumerate((4, 2)):
        expected, expected_marginals = brute_force(model, emissions[b, :n])
        assert float(logp[b]) == pytest.approx(expected, abs=1e-5)
        assert torch.allclose(marginals[b, :n], expected_marginals, atol=1e-5)
    assert not marginals[1, 2:].any()  # padding carries no probability


def test_softmax_scores_sum_each_tokens_best_log_probability():
    model = bundle(crf=False).model
    emissions = torch.log(torch.tensor([[[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]]]))
    mask = torch.ones(1, 2, dtype=torch.bool)
    path, logp, marginals = al._best_and_marginals(model, emissions, mask)
    assert path.tolist() == [[0, 0]]
    assert float(logp[0]) == pytest.approx(np.log(0.7) + np.log(0.5))
    assert torch.allclose(marginals, emissions.exp())


def scores(lengths, logp, entropy=None, embedding=None, disagreement=None) -> al.PoolScores:
    n = len(lengths)
    return al.PoolScores(np.array(lengths), np.array(logp, dtype=float),
                         np.array(entropy if entropy is not None else [0.0] * n), 3,
                         None if embedding is None else np.array(embedding, dtype=float),
                         None if disagreement is None else np.array(disagreement))


def test_strategies_rank_a_known_pool():
    # a: long, low total probability but sure per token; b: short and unsure per token
    s = scores(lengths=[20, 2, 5], logp=[-4.0, -1.6, -0.5], entropy=[0.1, 0.6, 0.3],
               disagreement=[0.0, 0.5, 0.2])
    ids = ["a", "b", "c"]
    order = {name: al.rank(name, ids, s, 0, SETTINGS, batch=1)
             for name in ("least_confidence", "mnlp", "token_entropy", "bald")}
    assert order["least_confidence"] == [0, 1, 2]  # 1 - p: a 0.98, b 0.80, c 0.39
    assert order["mnlp"] == [1, 0, 2]  # per token: b 0.8, a 0.2, c 0.1
    assert order["token_entropy"] == order["bald"] == [1, 2, 0]
    conf = al.confidence("mnlp", s)
    assert conf.tolist() == pytest.approx(np.exp([-0.2, -0.8, -0.1]).tolist())
    assert np.argsort(al.confidence("least_confidence", s)).tolist() == [0, 1, 2]


def test_ties_are_broken_by_the_ids_hash_whatever_the_pool_order():
    ids = [f"sent-{i}" for i in range(8)]
    flat = scores(lengths=[3] * 8, logp=[-1.0] * 8)
    order = [ids[i] for i in al.rank("mnlp", ids, flat, 0, SETTINGS, batch=2)]
    assert order == sorted(ids, key=al.stable_hash)
    back = ids[::-1]
    assert [back[i] for i in al.rank("mnlp", back, flat, 0, SETTINGS, batch=2)] == order
    random = [ids[i] for i in al.random_order(ids, seed=3)]
    assert random == [back[i] for i in al.random_order(back, seed=3)]
    assert random != [ids[i] for i in al.random_order(ids, seed=4)]


def test_diversity_spreads_a_batch_over_clusters():
    """Six near-copies of one hard sentence lead the MNLP ranking; the diverse batch of three
    takes one of them and two from the other clusters."""
    copies = [[10.0, 0.0]] * 6
    others = [[0.0, 10.0], [0.1, 10.0], [-10.0, -10.0], [-10.1, -10.0]]
    s = scores(lengths=[4] * 10, logp=[-4.0] * 6 + [-2.0, -1.9, -1.5, -1.4],
               embedding=copies + others)
    ids = [f"s{i}" for i in range(10)]
    plain = al.rank("mnlp", ids, s, 0, SETTINGS, batch=3)
    diverse = al.rank("mnlp_diverse", ids, s, 0, SETTINGS, batch=3)
    assert set(plain[:3]) <= set(range(6))
    assert sorted(diverse) == list(range(10))
    first = diverse[:3]
    assert len([i for i in first if i < 6]) == 1 and {6, 8} <= set(first)
    assert diverse == al.rank("mnlp_diverse", ids, s, 0, SETTINGS, batch=3)


def test_cluster_strategy_visits_every_cluster_first():
    emb = [[0.0, 0.0]] * 5 + [[9.0, 9.0]] * 3 + [[-9.0, 9.0]] * 2
    s = scores(lengths=[3] * 10, logp=[-1.0] * 10, embedding=emb)
    order = al.rank("cluster", [f"s{i}" for i in range(10)], s, 1, SETTINGS, batch=3)
    group = [0] * 5 + [1] * 3 + [2] * 2
    assert sorted(order) == list(range(10)) and {group[i] for i in order[:3]} == {0, 1, 2}


def test_take_tokens_stops_once_the_budget_is_reached():
    assert al.take_tokens([2, 0, 1], [5, 3, 4], budget=5) == [2, 0]
    assert al.take_tokens([2, 0, 1], [5, 3, 4], budget=4) == [2]
    assert al.take_tokens([2, 0, 1], [5, 3, 4], budget=100) == [2, 0, 1]


@pytest.mark.parametrize("crf", [True, False])
def test_pool_scores_are_deterministic_and_bald_follows_its_seed(crf):
    b, sentences = bundle(crf), pool()
    first = al.score_pool(b, sentences, 4, embeddings=True, bald_passes=6, seed=0)
    torch.manual_seed(123)  # the caller's generator state must not matter
    again = al.score_pool(b, sentences, 4, embeddings=True, bald_passes=6, seed=0)
    for name in ("best_logprob", "entropy", "embedding", "disagreement"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    other = al.score_pool(b, sentences, 4, bald_passes=6, seed=1)
    assert not np.array_equal(first.disagreement, other.disagreement)
    assert np.array_equal(first.best_logprob, other.best_logprob)  # dropout off for scores
    assert (first.best_logprob <= 0).all() and (first.disagreement > 0).any()
    assert first.lengths.tolist() == [len(s.tokens) for s in sentences]
    # the batch size changes the batches, never a score
    wide = al.score_pool(b, sentences, 64)
    assert np.allclose(wide.best_logprob, first.best_logprob, atol=1e-5)
    still = al.score_pool(bundle(crf, dropout=0.0), sentences, 4, bald_passes=4, seed=0)
    assert not still.disagreement.any()  # without dropout every pass agrees


def test_rank_pool_picks_by_tokens_and_needs_a_model_only_where_it_must():
    b, sentences = bundle(crf=True), pool()
    order, conf = al.rank_pool("random", None, sentences, 0, SETTINGS, budget_tokens=10)
    assert sorted(order) == list(range(len(sentences))) and np.isnan(conf).all()
    with pytest.raises(ValueError, match="needs a trained tagger"):
        al.rank_pool("mnlp", None, sentences, 0, SETTINGS, batch=3)
    for strategy in al.STRATEGIES:
        order, conf = al.rank_pool(strategy, b, sentences, 0, SETTINGS, budget_tokens=10)
        assert sorted(order) == list(range(len(sentences)))
        assert order == al.rank_pool(strategy, b, sentences, 0, SETTINGS, budget_tokens=10)[0]
        assert ((conf >= 0) & (conf <= 1)).all()
    with pytest.raises(ValueError, match="unknown query strategy"):
        al.rank_pool("smart", b, sentences, 0, SETTINGS, batch=3)


def test_learning_curve_numbers_by_hand():
    from pipeline import learning_curves as lc

    # pool of 1000 tokens; rounds at 20, 50, 100, 200 tokens
    points = [{"tokens": t, "score": s} for t, s in [(20, 0.5), (50, 0.7), (100, 0.8),
                                                     (200, 0.9)]]
    assert lc.at(points, 0.05, 1000) == pytest.approx(0.7)
    assert lc.at(points, 0.15, 1000) == pytest.approx(0.85)  # halfway from 100 to 200
    assert lc.at(points, 0.01, 1000) is None and lc.at(points, 0.3, 1000) is None
    assert lc.reach(points, 0.75, 1000) == pytest.approx(0.075)  # 50 + 0.5 * 50 tokens
    assert lc.reach(points, 0.4, 1000) == pytest.approx(0.02)  # already at the seed set
    assert lc.reach(points, 0.95, 1000) is None
    # trapezoids over 0.02-0.2: (0.6 * 0.03 + 0.75 * 0.05 + 0.85 * 0.1) / 0.18
    assert lc.area(points, 1000) == pytest.approx((0.018 + 0.0375 + 0.085) / 0.18)
