"""Tagging stages: train a tagger variant on a prepared corpus, evaluate it on the test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline import workflow
from pipeline.data.sentences import Sentence
from pipeline.io import write_json
from pipeline.seeding import seed_everything, select_device
from pipeline.stages.common import load_config, mark_done, read_jsonl, read_run_id
from pipeline.tracking import job_run


def hyperparameters(cfg: dict[str, Any], corpus: str, model: str) -> dict[str, Any]:
    """Model and trainer settings, the variant's switches, then the corpus's own overrides."""
    tagging = cfg["tagging"]
    entry = tagging["corpora"][corpus]
    return {**tagging["model"], **tagging["trainer"], **tagging["variants"][model],
            **entry.get("overrides", {}), "threads": cfg["threads"]}


def _split(corpus: str, name: str) -> list[Sentence]:
    base = Path(workflow.path("prepared_tagging", corpus=corpus))
    return [Sentence(r["id"], r["tokens"], r["tags"], aux=r.get("aux", {}))
            for r in read_jsonl(base / f"{name}.jsonl")]


def _manifest(corpus: str) -> dict[str, Any]:
    base = Path(workflow.path("prepared_tagging", corpus=corpus))
    return json.loads((base / "manifest.json").read_text())


def train(corpus: str, model: str, seed: int) -> None:
    from pipeline.train.tagging import load_bundle, save_bundle, train_tagger

    cfg = load_config()
    device = select_device(cfg["device"])
    out = Path(workflow.path("tagger", corpus=corpus, model=model, seed=seed))
    params = workflow.param_values("train_tagger", cfg, corpus=corpus, model=model)
    base = workflow.path("prepared_tagging", corpus=corpus)
    source = workflow.transfer_source(cfg, model, seed)
    inputs = [f"{base}/train.jsonl", f"{base}/dev.jsonl", *([source] if source else [])]
    with job_run("tagging", f"{model}/{corpus}/seed{seed}", "train_tagger", params, seed, inputs,
                 cfg, str(device), {"corpus": corpus, "model": model}) as run:
        hp = hyperparameters(cfg, corpus, model)
        if hp["lexical_dim"]:
            from pipeline.data.lexical import load

            run.set_tags({f"lexical.{k}": v for k, v in load().provenance.items()})
        seed_everything(seed)
        bundle, history = train_tagger(_split(corpus, "train"), _split(corpus, "dev"),
                                       _manifest(corpus)["scheme"], hp, seed, device,
                                       run.log_metrics,
                                       init_from=load_bundle(source) if source else None)
        save_bundle(out / "model.pt", bundle)
        write_json(out / "history.json", history)
        run.log_artifact(out / "model.pt", "model")
        run.log_artifact(out / "history.json")
        run.log_text(str(bundle.model), "model/architecture.txt")
        mark_done(out, run.run_id)


def evaluate(corpus: str, model: str, seed: int) -> None:
    from pipeline.data.iob2 import write_conll
    from pipeline.evaluate.tagging import confusion_figure, tagging_metrics
    from pipeline.train.tagging import load_bundle, predict

    cfg = load_config()
    model_dir = Path(workflow.path("tagger", corpus=corpus, model=model, seed=seed))
    out = Path(workflow.path("tagging_result", corpus=corpus, model=model, seed=seed))
    params = workflow.param_values("evaluate_tagger", cfg)
    base = workflow.path("prepared_tagging", corpus=corpus)
    inputs = [f"{model_dir}/model.pt", f"{base}/test.jsonl"]
    train_run = read_run_id(model_dir)
    with job_run("tagging", f"evaluate/{model}/{corpus}/seed{seed}", "evaluate_tagger", params,
                 seed, inputs, cfg, "cpu",
                 {"corpus": corpus, "model": model, "train_run_id": train_run}) as run:
        seed_everything(seed)
        test = _split(corpus, "test")
        bundle = load_bundle(model_dir / "model.pt")
        predicted = predict(bundle, test, cfg["tagging"]["evaluation"]["batch_size"])
        gold = [s.tags for s in test]
        metrics = tagging_metrics(gold, predicted, _manifest(corpus)["scheme"])
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
        for label, scores in metrics.get("per_type", {}).items():
            run.log_metrics({f"{label}.{k}": float(v) for k, v in scores.items()})
        write_conll(out / "predictions.conll", test, predicted)
        confusion_figure(gold, predicted, out / "confusion.png")
        write_json(out / "metrics.json", metrics)
        for name in ("predictions.conll", "confusion.png", "metrics.json"):
            run.log_artifact(out / name, "evaluation")
        mark_done(out, run.run_id, train_run_id=train_run)
