"""Costs of the active-learning simulation (docs/benchmarks.md, "Active learning").

    python benchmarks/bench_active_learning.py score MODEL --corpus ud_ewt
        pool-scoring speed of a trained tagger on a prepared corpus's pool (one thread):
        sentences per second for the plain scores, with embeddings, and with BALD's passes
    python benchmarks/bench_active_learning.py rounds [--corpus ud_ewt]
        every finished round in the MLflow store (experiment active_learning): its run's
        wall time, the training epochs' seconds, and the rest (selection, scoring,
        evaluation, tracking): the per-round overhead
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from pipeline import config, numerics


def score(model: str, corpus: str, passes: int) -> None:
    cfg = config.load()
    numerics.apply(cfg["numerics"], 1)
    from pipeline import active_learning as al
    from pipeline.seeding import deterministic_torch, set_threads
    from pipeline.stages.active_learning import pool_of
    from pipeline.train.tagging import load_bundle

    set_threads(1)
    deterministic_torch()
    pool, bundle = pool_of(corpus), load_bundle(model)
    batch = cfg["active_learning"]["query"]["score_batch"]
    for label, kw in [("scores", {}), ("+ embeddings", {"embeddings": True}),
                      (f"BALD, {passes} passes", {"bald_passes": passes})]:
        start = time.perf_counter()
        al.score_pool(bundle, pool, batch, **kw)
        seconds = time.perf_counter() - start
        print(f"{label}: {seconds:.1f} s for {len(pool)} sentences, "
              f"{len(pool) / seconds:,.0f} sentences/s", flush=True)


def rounds(corpus: str | None) -> None:
    from mlflow.tracking import MlflowClient

    from pipeline import tracking

    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name("active_learning")
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'",
                              max_results=5000)
    table: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for run in runs:
        tags = run.data.tags
        if corpus and tags.get("corpus") != corpus:
            continue
        wall = (run.info.end_time - run.info.start_time) / 1000
        history = client.get_metric_history(run.info.run_id, "epoch_seconds")
        train = sum(m.value for m in history)
        table[tags["corpus"], tags["strategy"] if tags["stage"] == "al_round"
              else f"successor/{tags['model']}"].append((wall, train))
    for (name, strategy), rows in sorted(table.items()):
        wall, train = sum(r[0] for r in rows), sum(r[1] for r in rows)
        print(json.dumps({"corpus": name, "strategy": strategy, "rounds": len(rows),
                          "wall_s": round(wall, 1), "training_s": round(train, 1),
                          "overhead_per_round_s": round((wall - train) / len(rows), 1)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score")
    s.add_argument("model")
    s.add_argument("--corpus", default="ud_ewt")
    s.add_argument("--passes", type=int, default=8)
    r = sub.add_parser("rounds")
    r.add_argument("--corpus")
    args = p.parse_args()
    if args.command == "score":
        score(args.model, args.corpus, args.passes)
    else:
        rounds(args.corpus)


if __name__ == "__main__":
    main()
