"""Clustering stages: pretrain the shared autoencoder, fit a method, evaluate it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline import workflow
from pipeline.io import save_torch, write_json, write_npy
from pipeline.seeding import numpy_rng, seed_everything, select_device
from pipeline.stages.common import load_config, mark_done, read_run_id
from pipeline.tracking import job_run


def _prepared(dataset: str) -> tuple[np.ndarray, np.ndarray, dict]:
    base = Path(workflow.path("prepared_clustering", dataset=dataset))
    manifest = json.loads((base / "manifest.json").read_text())
    return np.load(base / "x.npy"), np.load(base / "y.npy"), manifest


def image_shape(manifest: dict) -> tuple[int, int] | None:
    """(height, width) when the rows are square images (augmentation applies), else None."""
    return tuple(manifest["image_shape"]) if manifest["image_shape"] else None


def pretrain(dataset: str, seed: int) -> None:
    from pipeline.train.clustering import pretrain_autoencoder

    cfg = load_config()
    device = select_device(cfg["device"])
    out = Path(workflow.path("autoencoder", dataset=dataset, seed=seed))
    params = workflow.param_values("pretrain", cfg, dataset=dataset)
    inputs = workflow.files("prepared_clustering", dataset=dataset)
    with job_run("clustering", f"pretrain/{dataset}/seed{seed}", "pretrain", params, seed,
                 inputs, cfg, str(device),
                 {"dataset": dataset, "model": "autoencoder"}) as run:
        seed_everything(seed)
        x, y, manifest = _prepared(dataset)
        if cfg["clustering"]["autoencoder"]["augment"]:
            run.set_tags({"augment": "on" if image_shape(manifest)
                          else "off: the rows are not square images"})
        model, history = pretrain_autoencoder(x, cfg["clustering"]["autoencoder"], seed, device,
                                              run.log_metrics, image_shape(manifest), y)
        save_torch(out / "weights.pt", model.state_dict())
        run.log_artifact(out / "weights.pt", "model")
        run.log_text(str(model), "model/architecture.txt")
        write_json(out / "history.json", history)
        run.log_artifact(out / "history.json")
        mark_done(out, run.run_id)


def train(dataset: str, model: str, seed: int) -> None:
    import torch

    from pipeline.models.autoencoder import Autoencoder
    from pipeline.train.clustering import fit_clustering

    cfg = load_config()
    device = select_device(cfg["device"])
    out = Path(workflow.path("clustering_model", dataset=dataset, model=model, seed=seed))
    params = workflow.param_values("train_clustering", cfg, dataset=dataset, model=model)
    inputs = workflow.files("prepared_clustering", dataset=dataset)
    autoencoder = None
    tags = {"dataset": dataset, "model": model}
    if model in workflow.USES_AUTOENCODER:
        ae_dir = workflow.path("autoencoder", dataset=dataset, seed=seed)
        inputs.append(f"{ae_dir}/weights.pt")
        tags["autoencoder_run_id"] = read_run_id(ae_dir)
    with job_run("clustering", f"{model}/{dataset}/seed{seed}", "train_clustering", params, seed,
                 inputs, cfg, str(device), tags) as run:
        seed_everything(seed)
        x, y, manifest = _prepared(dataset)
        if model in workflow.USES_AUTOENCODER:
            autoencoder = Autoencoder(x.shape[1], cfg["clustering"]["autoencoder"])
            autoencoder.load_state_dict(torch.load(f"{ae_dir}/weights.pt", weights_only=True))
        result = fit_clustering(model, x, y, manifest["n_clusters"], autoencoder,
                                cfg["clustering"]["methods"][model], seed, device,
                                run.log_metrics, image_shape(manifest))
        save_torch(out / "state.pt", result.state)
        write_npy(out / "predictions.npy", result.assignments.astype(np.int64))
        embedding = result.embedding if result.embedding is not None else np.empty((0,))
        write_npy(out / "embedding.npy", embedding.astype(np.float32))
        for name in ("state.pt", "predictions.npy"):
            run.log_artifact(out / name, "model" if name == "state.pt" else "predictions")
        write_json(out / "history.json", result.history)
        run.log_artifact(out / "history.json")
        mark_done(out, run.run_id)


def evaluate(dataset: str, model: str, seed: int) -> None:
    from pipeline.evaluate.clustering import (
        clustering_metrics,
        curves_figure,
        embedding_figure,
        gallery_figure,
    )

    cfg = load_config()
    model_dir = Path(workflow.path("clustering_model", dataset=dataset, model=model, seed=seed))
    out = Path(workflow.path("clustering_result", dataset=dataset, model=model, seed=seed))
    params = workflow.param_values("evaluate_clustering", cfg)
    prepared = workflow.path("prepared_clustering", dataset=dataset)
    inputs = [f"{model_dir}/predictions.npy", f"{prepared}/y.npy"]
    train_run = read_run_id(model_dir)
    with job_run("clustering", f"evaluate/{model}/{dataset}/seed{seed}", "evaluate_clustering",
                 params, seed, inputs, cfg, "cpu",
                 {"dataset": dataset, "model": model, "train_run_id": train_run}) as run:
        x, y, manifest = _prepared(dataset)
        pred = np.load(model_dir / "predictions.npy")
        metrics = clustering_metrics(y, pred)
        run.log_metrics(metrics)
        figures = out / "figures"
        embedding = np.load(model_dir / "embedding.npy")
        embedding = embedding if embedding.size else x
        shown = numpy_rng(seed, "map").permutation(len(y))[:params_map_points(cfg)]
        embedding_figure(embedding[shown], pred[shown], y[shown], figures / "embedding.png", seed)
        if manifest["image_shape"]:
            gallery_figure(x, pred, tuple(manifest["image_shape"]), figures / "gallery.png")
        curves_figure(json.loads((model_dir / "history.json").read_text()),
                      figures / "curves.png")
        for png in sorted(figures.glob("*.png")):
            run.log_artifact(png, "figures")
        write_json(out / "metrics.json", {k: float(v) for k, v in metrics.items()})
        mark_done(out, run.run_id, train_run_id=train_run)


def params_map_points(cfg: dict) -> int:
    """t-SNE is quadratic-ish: the embedding map shows a fixed-size random sample."""
    return int(cfg["clustering"]["evaluation"]["map_points"])
