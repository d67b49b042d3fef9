"""Made-up results of every evaluation job of a configuration, where the report reads them:
metrics.json, run.json and the job's figures. They let a test or benchmark render the report
of a configuration far too big to run there (a paper profile: 17 taggers x 3 seeds). Only the
numbers are made up: the figures are real PNGs, each kind drawn once by the evaluation code
and copied to every job (rendering cost depends on their bytes, not on what they show)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import workflow
from pipeline.evaluate.clustering import curves_figure, embedding_figure, gallery_figure
from pipeline.evaluate.tagging import confusion_figure


def _drawn(directory: Path) -> dict[str, bytes]:
    """One real figure of each kind a job draws, by file name."""
    rng = np.random.default_rng(0)
    x, pred = rng.random((300, 64)), np.arange(300) % 10
    curves_figure({"loss": list(np.linspace(2.0, 0.5, 50)), "acc": list(np.linspace(0.5, 0.9, 50))},
                  directory / "curves.png")
    embedding_figure(rng.normal(size=(200, 10)), pred[:200], pred[:200][::-1],
                     directory / "embedding.png", seed=0)
    gallery_figure(x, pred, (8, 8), directory / "gallery.png")
    tags = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
            "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X"]
    gold = [[tags[i % len(tags)] for i in range(j, j + 40)] for j in range(50)]
    confusion_figure(gold, [[t if i % 7 else "NOUN" for i, t in enumerate(s)] for s in gold],
                     directory / "confusion.png")
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def _job(base: Path, metrics: dict[str, Any], figures: dict[str, bytes], rng: Any) -> None:
    base.mkdir(parents=True, exist_ok=True)
    (base / "metrics.json").write_text(json.dumps(metrics))
    (base / "run.json").write_text(json.dumps({"run_id": rng.bytes(16).hex(),
                                               "train_run_id": rng.bytes(16).hex()}))
    for name, data in figures.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)


def synthesise(root: Path, cfg: dict[str, Any], seed: int = 0) -> None:
    """Every evaluation job's outputs under ``root``: model i scores about 0.5 + 0.02 i, each
    seed off by a few points (seeded, so the same call writes the same files)."""
    rng = np.random.default_rng(seed)
    drawn = _drawn(Path(root, ".figures"))
    clustering = cfg.get("clustering", {})
    for dataset in clustering.get("datasets", {}):
        for i, model in enumerate(clustering["models"]):
            for s in cfg["seeds"]:
                acc = 0.5 + 0.02 * i + rng.normal(0, 0.02)
                _job(root / workflow.path("clustering_result", dataset=dataset, model=model,
                                          seed=s),
                     {"acc": acc, "nmi": acc - 0.1, "ari": acc - 0.2},
                     {f"figures/{n}": drawn[n] for n in ("curves.png", "embedding.png",
                                                          "gallery.png")}, rng)
    tagging = cfg.get("tagging", {})
    for corpus, entry in tagging.get("corpora", {}).items():
        for i, model in enumerate(workflow.tagging_models(cfg, corpus)):
            for s in cfg["seeds"]:
                score = 0.5 + 0.02 * i + rng.normal(0, 0.02)
                metrics: dict[str, Any] = {"accuracy": 0.9 + score / 20}
                if entry["format"] != "conllu":  # entities: P/R/F1, per type too
                    metrics |= {"precision": score + 0.01, "recall": score - 0.01, "f1": score,
                                "per_type": {t: {"precision": score, "recall": score,
                                                 "f1": score + d, "support": 100}
                                             for t, d in (("LOC", 0.05), ("ORG", -0.1),
                                                          ("PER", 0.08))}}
                _job(root / workflow.path("tagging_result", corpus=corpus, model=model, seed=s),
                     metrics, {"confusion.png": drawn["confusion.png"]}, rng)
