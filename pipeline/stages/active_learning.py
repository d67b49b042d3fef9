"""Active-learning simulation stages (issue #29): one job per round, and the successor check.

A round of strategy S, seed N, round r (``al-round``): the tagger of round r - 1 ranks the
sentences not yet labelled (``pipeline.active_learning``), the top of the ranking is
"annotated" up to the round's token budget (the gold tags: an oracle), a fresh tagger (or,
with ``warm_start``, one starting from round r - 1's encoder) is trained on everything
labelled so far and evaluated on the corpus's evaluation split. Round 0 is the seed set,
chosen at random and shared by every strategy (``workflow.al_previous``); the pseudo-strategy
``full`` trains once on the whole pool, the 100 % line. The pool is everything the
prepared corpus does not evaluate on (train + dev splits: for UD EWT its whole train file);
the labelled sentences are split into train and early-stopping dev by the same stable hash
as any corpus (``tagging.split.dev``).

The successor check (``al-successor``, Lowell et al. 2019) trains another variant on a
round's selection, to compare selections made by one model when used by another.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline import workflow
from pipeline.data.sentences import Sentence
from pipeline.data.splits import assign
from pipeline.io import write_json
from pipeline.seeding import seed_everything, select_device
from pipeline.stages.common import load_config, mark_done, read_run_id
from pipeline.stages.tagging import _manifest, _split, hyperparameters
from pipeline.tracking import job_run

FULL = "full"  # the pseudo-strategy of the full-data line


def pool_of(corpus: str) -> list[Sentence]:
    """The unlabelled pool: the prepared train and dev splits, in file order."""
    return [*_split(corpus, "train"), *_split(corpus, "dev")]


def budget(fraction: float, pool_tokens: int) -> int:
    return math.ceil(fraction * pool_tokens)


def read_selection(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / "selection.json").read_text(encoding="utf-8"))


def select(cfg: dict[str, Any], corpus: str, strategy: str, seed: int, round_: int,
           pool: list[Sentence]) -> dict[str, Any]:
    """The round's selection record: every labelled id (in labelling order) and this round's
    picks in rank order with the choosing model's confidence. Only data, seed and model
    decide it, so equal inputs give equal bytes; which run chose is in run.json."""
    from pipeline.active_learning import needs

    sim = cfg["active_learning"]["simulation"]
    if strategy != FULL:
        needs(strategy, cfg["active_learning"]["query"])  # a strategy it knows
        if not 0 <= round_ < len(sim["fractions"]):
            raise ValueError(f"active_learning.simulation.fractions has rounds 0 to "
                             f"{len(sim['fractions']) - 1}, not {round_}")
    lengths = {s.id: len(s.tokens) for s in pool}
    pool_tokens = sum(lengths.values())
    record: dict[str, Any] = {"corpus": corpus, "strategy": strategy, "seed": seed,
                              "round": round_, "pool_sentences": len(pool),
                              "pool_tokens": pool_tokens}
    if strategy == FULL:
        return record | {"fraction": 1.0, "budget_tokens": pool_tokens,
                         "chosen": [{"id": s.id, "tokens": len(s.tokens)} for s in pool],
                         "labelled": [s.id for s in pool]}
    fraction = sim["fractions"][round_]
    target = budget(fraction, pool_tokens)
    query = cfg["active_learning"]["query"]
    labelled: list[str] = []
    bundle, previous = None, workflow.al_previous(corpus, strategy, seed, round_)
    if previous is not None:
        labelled = read_selection(previous)["labelled"]
        if needs(strategy, query)["model"]:
            from pipeline.train.tagging import load_bundle

            bundle = load_bundle(Path(previous) / "model.pt")
    chosen = choose(strategy if previous else "random", bundle, pool, labelled, target, seed,
                    query)
    return record | {"fraction": fraction, "budget_tokens": target, "chosen": chosen,
                     "labelled": [*labelled, *(c["id"] for c in chosen)]}


def choose(strategy: str, bundle: Any, pool: list[Sentence], labelled: list[str], target: int,
           seed: int, query: dict[str, Any]) -> list[dict[str, Any]]:
    """The sentences to label next, in rank order, so that the labelled tokens reach
    ``target``: ``{"id", "tokens"}`` and the choosing model's ``confidence`` when it has one."""
    from pipeline.active_learning import rank_pool, take_tokens

    known = set(labelled)
    rest = [s for s in pool if s.id not in known]
    left = max(0, target - sum(len(s.tokens) for s in pool if s.id in known))
    order, confidence = rank_pool(strategy, bundle, rest, seed, query, budget_tokens=left)
    picks = take_tokens(order, [len(s.tokens) for s in rest], left)
    return [{"id": rest[i].id, "tokens": len(rest[i].tokens),
             **({"confidence": float(confidence[i])} if bundle is not None else {})}
            for i in picks]


def labelled_split(labelled: list[Sentence], dev: float) -> tuple[list[Sentence],
                                                                 list[Sentence]]:
    """Train and early-stopping dev of the labelled sentences, by the stable hash splits use;
    at least one dev sentence (the last labelled) so that any budget can train."""
    train = [s for s in labelled if assign(s.id, dev, 0) == "train"]
    held = [s for s in labelled if assign(s.id, dev, 0) != "train"]
    if not held:
        train, held = train[:-1], train[-1:]
    return train, held


def train_and_evaluate(run: Any, cfg: dict[str, Any], corpus: str, variant: str,
                       labelled: list[Sentence], seed: int, device: Any, out: Path,
                       init_from: Any = None) -> dict[str, Any]:
    """Train ``variant`` on the labelled sentences, evaluate on the corpus's evaluation split,
    write model.pt, history.json and metrics.json into ``out``; returns the metrics."""
    from pipeline.evaluate.tagging import tagging_metrics
    from pipeline.train.tagging import predict, save_bundle, train_tagger

    scheme = _manifest(corpus)["scheme"]
    hp = hyperparameters(cfg, corpus, variant)
    if hp["lexical_dim"]:
        from pipeline.data.lexical import load

        run.set_tags({f"lexical.{k}": v for k, v in load().provenance.items()})
    train, dev = labelled_split(labelled, cfg["tagging"]["split"]["dev"])
    seed_everything(seed)
    bundle, history = train_tagger(train, dev, scheme, hp, seed, device, run.log_metrics,
                                   init_from=init_from)
    test = _split(corpus, "test")
    predicted = predict(bundle, test, cfg["tagging"]["evaluation"]["batch_size"])
    metrics = tagging_metrics([s.tags for s in test], predicted, scheme)
    metrics |= {"labelled_sentences": len(labelled),
                "labelled_tokens": sum(len(s.tokens) for s in labelled)}
    run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    save_bundle(out / "model.pt", bundle)
    write_json(out / "history.json", history)
    write_json(out / "metrics.json", metrics)
    for name in ("model.pt", "history.json", "metrics.json"):
        run.log_artifact(out / name, "round")
    return metrics


def _inputs(corpus: str, *more: str) -> list[str]:
    base = workflow.path("prepared_tagging", corpus=corpus)
    return [f"{base}/{name}.jsonl" for name in ("train", "dev", "test")] + list(more)


def run_round(corpus: str, strategy: str, seed: int, round_: int) -> None:
    from pipeline.train.tagging import load_bundle

    cfg = load_config()
    sim = cfg["active_learning"]["simulation"]
    device = select_device(cfg["device"])
    out = Path(workflow.path("al_round", corpus=corpus, strategy=strategy, seed=seed,
                             round=round_))
    previous = workflow.al_previous(corpus, strategy, seed, round_)
    inputs = _inputs(corpus, *([f"{previous}/selection.json", f"{previous}/model.pt"]
                               if previous else []))
    params = workflow.param_values("al_round", cfg, corpus=corpus)
    tags = {"corpus": corpus, "strategy": strategy, "round": str(round_),
            "model": sim["tagger"]}
    with job_run("active_learning", f"{strategy}/{corpus}/seed{seed}/round{round_}",
                 "al_round", params, seed, inputs, cfg, str(device), tags) as run:
        pool = pool_of(corpus)
        record = select(cfg, corpus, strategy, seed, round_, pool)
        write_json(out / "selection.json", record)
        run.log_artifact(out / "selection.json", "round")
        by_id = {s.id: s for s in pool}
        init = (load_bundle(Path(previous) / "model.pt") if sim["warm_start"] and previous
                else None)
        train_and_evaluate(run, cfg, corpus, sim["tagger"], [by_id[i] for i in record["labelled"]],
                           seed, device, out, init_from=init)
        mark_done(out, run.run_id,
                  chosen_by=read_run_id(previous) if previous else None)


def run_successor(corpus: str, strategy: str, seed: int, round_: int, model: str) -> None:
    cfg = load_config()
    device = select_device(cfg["device"])
    source = workflow.path("al_round", corpus=corpus, strategy=strategy, seed=seed, round=round_)
    out = Path(workflow.path("al_successor", corpus=corpus, strategy=strategy, seed=seed,
                             round=round_, model=model))
    params = workflow.param_values("al_successor", cfg, corpus=corpus, model=model)
    tags = {"corpus": corpus, "strategy": strategy, "round": str(round_), "model": model,
            "selection_run_id": read_run_id(source)}
    with job_run("active_learning", f"successor/{model}/{strategy}/{corpus}/seed{seed}/"
                 f"round{round_}", "al_successor", params, seed,
                 _inputs(corpus, f"{source}/selection.json"), cfg, str(device), tags) as run:
        by_id = {s.id: s for s in pool_of(corpus)}
        labelled = [by_id[i] for i in read_selection(source)["labelled"]]
        train_and_evaluate(run, cfg, corpus, model, labelled, seed, device, out)
        mark_done(out, run.run_id, selection_run_id=tags["selection_run_id"])
