"""Query strategies: which unlabelled sentences a trained tagger would learn most from.

One place for every strategy, used by ``python -m annotation push --strategy`` (the experts'
queue) and by the simulation stage (``pipeline.stages.active_learning``). A strategy turns a
pool and a model into a ranking, most informative first; the caller takes a prefix (N tasks,
or sentences up to a token budget). Every ranking is a function of the model's weights, the
pool and the seed only: scores are computed in a fixed batch order, MC-dropout passes from a
seeded generator, k-means from the seed, and equal scores are ordered by a stable hash of the
sentence id (never by position or by chance).

Scores (Shen et al. 2018; Settles & Craven 2008), from one forward pass per batch:
- the best sequence's log-probability: for a CRF head the Viterbi path's score minus log Z
  (``crf.score`` - ``crf.log_partition``), for a softmax head the sum of each token's
  maximal log-probability;
- tag marginals (softmax, or a CRF's forward-backward marginals as the gradient of log Z with
  respect to the emissions) for the mean token entropy;
- the sentence embedding: the mean of the top BiLSTM layer's states over its tokens;
- BALD: ``passes`` stochastic forward passes with dropout on, each decoded; a token's
  disagreement is the share of passes that differ from its most frequent tag.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.data.sentences import Sentence

STRATEGIES = ("random", "least_confidence", "mnlp", "token_entropy", "bald", "cluster",
              "mnlp_diverse")
# Strategies whose order is their confidence, ascending: Label Studio's "Uncertainty
# sampling" (prediction score ascending) can serve exactly this order.
BY_CONFIDENCE = ("least_confidence", "mnlp", "token_entropy", "bald")


@dataclass
class PoolScores:
    """What a tagger says about each pool sentence (arrays of length N, pool order)."""

    lengths: np.ndarray  # tokens per sentence
    best_logprob: np.ndarray  # log p(best tag sequence | sentence)
    entropy: np.ndarray  # mean token entropy of the tag marginals (nats)
    n_tags: int
    embedding: np.ndarray | None = None  # [N, 2 * hidden]: mean top-layer BiLSTM state
    disagreement: np.ndarray | None = None  # BALD: mean share of passes off the modal tag


def stable_hash(key: str) -> int:
    """An integer that depends only on ``key`` (no process salt, unlike ``hash``)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], 16)


def needs(strategy: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The scoring work a strategy needs: ``{"model": bool, "embeddings": bool,
    "bald_passes": int}``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown query strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    return {"model": strategy != "random",
            "embeddings": strategy in ("cluster", "mnlp_diverse"),
            "bald_passes": int(settings["bald_passes"]) if strategy == "bald" else 0}


def _encode(bundle: Any, sentences: Sequence[Sentence]) -> Any:
    from pipeline.train.tagging import encode

    empty = [s.id for s in sentences if not s.tokens]
    if empty:
        raise ValueError(f"pool: sentences without tokens cannot be scored: {empty[:3]}")
    return encode(bundle, sentences, with_tags=False)


def _best_and_marginals(model: Any, emissions: torch.Tensor, mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best path ``[B, L]``, its log-probability ``[B]`` and the tag marginals ``[B, L, T]``."""
    if model.crf is None:
        logp = torch.log_softmax(emissions, dim=2)
        best, path = logp.max(dim=2)
        return path * mask, (best * mask).sum(1), logp.exp()
    crf = model.crf
    path = crf.decode(emissions, mask)
    with torch.enable_grad():  # marginals = d log Z / d emissions (forward-backward)
        leaf = emissions.detach().requires_grad_()
        log_z = crf.log_partition(leaf, mask)
        (marginals,) = torch.autograd.grad(log_z.sum(), leaf)
    return path, crf.score(emissions, path, mask) - log_z.detach(), marginals


def _decode(model: Any, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if model.crf is None:
        return emissions.argmax(dim=2) * mask
    return model.crf.decode(emissions, mask)


def score_pool(bundle: Any, sentences: Sequence[Sentence], batch_size: int, *,
               embeddings: bool = False, bald_passes: int = 0, seed: int = 0) -> PoolScores:
    """Score every sentence with ``bundle`` (a ``TaggerBundle``), in the given order.

    Batches come longest first (``batches_in_order``), a fixed order for a given pool, so
    the MC-dropout masks of ``bald_passes`` > 0 depend only on ``seed``; the caller's torch
    generator is left as it was."""
    from pipeline.train.tagging import batches_in_order, make_batch

    model = bundle.model
    device = next(model.parameters()).device
    data = _encode(bundle, sentences)
    n = len(sentences)
    lengths = np.array([len(w) for w in data.words], dtype=np.int64)
    best = np.zeros(n)
    entropy = np.zeros(n)
    embedding = np.zeros((n, 2 * bundle.hp["hidden"]), dtype=np.float32) if embeddings else None
    disagreement = np.zeros(n) if bald_passes else None
    was_training = model.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for rows in batches_in_order(lengths.tolist(), batch_size):
                batch = make_batch(data, rows).to(device)
                mask = batch.mask
                model.eval()
                states = model.states(batch)
                _, logp, marginals = _best_and_marginals(model, model.out(states), mask)
                tokens = mask.sum(1).to(marginals.dtype)
                ent = -(marginals * marginals.clamp_min(1e-12).log()).sum(2)
                best[rows] = logp.double().cpu().numpy()
                entropy[rows] = ((ent * mask).sum(1) / tokens).double().cpu().numpy()
                if embedding is not None:
                    mean = (states * mask.unsqueeze(2)).sum(1) / tokens.unsqueeze(1)
                    embedding[rows] = mean.cpu().numpy()
                if disagreement is not None:
                    model.train()  # dropout on: each pass is a sample of the weights
                    paths = torch.stack([_decode(model, model.emissions(batch), mask)
                                         for _ in range(bald_passes)])
                    counts = torch.nn.functional.one_hot(paths, len(bundle.tags)).sum(0)
                    off = 1.0 - counts.max(dim=2).values.double() / bald_passes
                    disagreement[rows] = ((off * mask).sum(1) / tokens.double()).cpu().numpy()
    finally:
        model.train(was_training)
    return PoolScores(lengths, best, entropy, len(bundle.tags), embedding, disagreement)


def informativeness(strategy: str, scores: PoolScores) -> np.ndarray:
    """Higher = ask first, for the strategies that rank by a score."""
    if strategy == "least_confidence":
        return -np.expm1(scores.best_logprob)  # 1 - p(best sequence)
    if strategy in ("mnlp", "mnlp_diverse"):
        return -scores.best_logprob / scores.lengths  # minus the per-token log-probability
    if strategy == "token_entropy":
        return scores.entropy
    if strategy == "bald":
        if scores.disagreement is None:
            raise ValueError("bald needs scores with MC-dropout passes (bald_passes > 0)")
        return scores.disagreement
    raise ValueError(f"unknown query strategy {strategy!r}")


def confidence(strategy: str, scores: PoolScores) -> np.ndarray:
    """The model's confidence in [0, 1] as the strategy sees it (low = uncertain): what a
    Label Studio prediction's ``score`` carries. For the score-ordered strategies it is a
    decreasing function of ``informativeness``; for the others it is the per-token
    probability of the best sequence, exp(mnlp)."""
    if strategy == "least_confidence":
        return np.exp(scores.best_logprob)
    if strategy == "token_entropy":
        return 1.0 - scores.entropy / math.log(max(scores.n_tags, 2))
    if strategy == "bald":
        return 1.0 - informativeness("bald", scores)
    return np.exp(scores.best_logprob / scores.lengths)


def by_score(values: np.ndarray, ids: Sequence[str]) -> list[int]:
    """Indices by ``values``, highest first; equal values by the stable hash of the id."""
    keys = [stable_hash(i) for i in ids]
    return sorted(range(len(ids)), key=lambda i: (-float(values[i]), keys[i]))


def random_order(ids: Sequence[str], seed: int) -> list[int]:
    """A seeded shuffle that depends on each id and the seed only, not on pool order: a
    sentence keeps its place relative to the others when the pool grows."""
    return sorted(range(len(ids)), key=lambda i: stable_hash(f"{seed}:{ids[i]}"))


def kmeans_labels(x: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    """k-means cluster of each row (scikit-learn, seeded; float64 for stable sums)."""
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    k = max(1, min(k, len(x)))
    with warnings.catch_warnings():  # fewer distinct points than k: some clusters repeat
        warnings.simplefilter("ignore", ConvergenceWarning)
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(
            np.asarray(x, dtype=np.float64))


def spread(order: Sequence[int], labels: Sequence[int]) -> list[int]:
    """``order`` re-ordered to visit the clusters in turn: clusters by their first member in
    ``order``, each cluster's members in ``order``'s order."""
    queues: dict[int, list[int]] = {}
    for i, label in zip(order, labels, strict=True):
        queues.setdefault(int(label), []).append(i)
    lanes = list(queues.values())
    out: list[int] = []
    for depth in range(max(map(len, lanes), default=0)):
        out += [lane[depth] for lane in lanes if depth < len(lane)]
    return out


def rank(strategy: str, ids: Sequence[str], scores: PoolScores | None, seed: int,
         settings: Mapping[str, Any], batch: int) -> list[int]:
    """The pool's indices, most informative first.

    ``batch`` is how many sentences the caller means to take: ``mnlp_diverse`` spreads the
    ``candidates`` x ``batch`` most uncertain (by MNLP) over k-means clusters of their
    embeddings, so that a batch is not many copies of one hard sentence; the rest follow by
    MNLP. ``cluster`` visits k-means clusters of the whole pool in turn
    (``annotation.corpus.stratified_order``, the order ``push --clusters`` uses)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown query strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    if strategy == "random":
        return random_order(ids, seed)
    if scores is None:
        raise ValueError(f"{strategy} needs the model's scores of the pool")
    k, n_init = int(settings["clusters"]), int(settings["kmeans_n_init"])
    if strategy == "cluster":
        from annotation.corpus import stratified_order

        labels = kmeans_labels(_embedding(scores), k, seed, n_init)
        return stratified_order([f"{c:06d}" for c in labels], seed)
    order = by_score(informativeness(strategy, scores), ids)
    if strategy == "mnlp_diverse":
        top = order[:min(len(order), max(1, batch) * int(settings["candidates"]))]
        labels = kmeans_labels(_embedding(scores)[top], k, seed, n_init)
        order = spread(top, labels) + order[len(top):]
    return order


def _embedding(scores: PoolScores) -> np.ndarray:
    if scores.embedding is None:
        raise ValueError("this strategy needs sentence embeddings (score_pool embeddings=True)")
    return scores.embedding


def take_tokens(order: Sequence[int], lengths: Sequence[int], budget: int) -> list[int]:
    """The prefix of ``order`` whose tokens first reach ``budget`` (the last sentence may
    cross it: a sentence is labelled whole)."""
    out, total = [], 0
    for i in order:
        if total >= budget:
            break
        out.append(i)
        total += int(lengths[i])
    return out


def rank_pool(strategy: str, bundle: Any | None, pool: Sequence[Sentence], seed: int,
              settings: Mapping[str, Any], *, batch: int | None = None,
              budget_tokens: int | None = None) -> tuple[list[int], np.ndarray]:
    """Score (when there is a model) and rank ``pool``: (order, confidence per sentence;
    NaN without a model). Give ``batch`` (sentences to take) or ``budget_tokens`` (tokens to take;
    the batch is then the MNLP prefix that reaches it)."""
    need = needs(strategy, settings)
    ids = [s.id for s in pool]
    if need["model"] and bundle is None:
        raise ValueError(f"strategy {strategy} needs a trained tagger (--model)")
    scores = None
    if bundle is not None:
        scores = score_pool(bundle, pool, int(settings["score_batch"]),
                            embeddings=need["embeddings"], bald_passes=need["bald_passes"],
                            seed=seed)
    if batch is None:
        if budget_tokens is None:
            raise ValueError("rank_pool needs batch or budget_tokens")
        first = (by_score(informativeness("mnlp", scores), ids) if scores is not None
                 else random_order(ids, seed))
        batch = len(take_tokens(first, [len(s.tokens) for s in pool], budget_tokens))
    order = rank(strategy, ids, scores, seed, settings, batch)
    conf = confidence(strategy, scores) if scores is not None else np.full(len(pool), np.nan)
    return order, conf
