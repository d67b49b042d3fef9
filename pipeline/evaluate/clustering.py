"""Clustering metrics (ACC, NMI, ARI) and the figures the report shows for each run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from pipeline.io import atomic_path


def unsupervised_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy under the best one-to-one map of clusters to labels (Hungarian algorithm).

    The contingency table may be rectangular: surplus clusters (or labels) stay unmatched,
    and their samples count as errors.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-d")
    labels, true_idx = np.unique(y_true, return_inverse=True)
    clusters, pred_idx = np.unique(y_pred, return_inverse=True)
    table = np.zeros((clusters.size, labels.size), dtype=np.int64)
    np.add.at(table, (pred_idx, true_idx), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / y_true.size)


def clustering_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "acc": unsupervised_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }


def _pyplot() -> Any:
    """matplotlib, imported when a figure is drawn: training jobs use the metrics only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def embedding_figure(
    embedding: np.ndarray, y_pred: np.ndarray, y_true: np.ndarray, path: str | Path, seed: int
) -> None:
    """2-D t-SNE of the embedding, coloured by cluster (left) and by true label (right).

    t-SNE with a fixed random_state, PCA initialisation and one thread is deterministic.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        xy = TSNE(n_components=2, init="pca", random_state=seed, n_jobs=1).fit_transform(
            np.asarray(embedding, dtype=np.float64)
        )
    fig, axes = _pyplot().subplots(1, 2, figsize=(12, 6))
    for ax, colours, title in ((axes[0], y_pred, "clusters"), (axes[1], y_true, "true labels")):
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, cmap="tab10", s=3, linewidths=0)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, path)


def gallery_mosaic(
    x: np.ndarray, y_pred: np.ndarray, image_shape: tuple[int, int], per_cluster: int
) -> np.ndarray:
    """Tile (row r, column c) is the c-th member of the r-th cluster (sorted ids), with a
    one-pixel NaN (blank) gap after each tile; a cluster with fewer members leaves blanks."""
    h, w = image_shape
    clusters = np.unique(y_pred)
    mosaic = np.full((len(clusters) * (h + 1), per_cluster * (w + 1)), np.nan)
    for row, cluster in enumerate(clusters):
        for col, member in enumerate(np.flatnonzero(y_pred == cluster)[:per_cluster]):
            top, left = row * (h + 1), col * (w + 1)
            mosaic[top:top + h, left:left + w] = x[member].reshape(image_shape)
    return mosaic


def gallery_figure(
    x: np.ndarray,
    y_pred: np.ndarray,
    image_shape: tuple[int, int] | None,
    path: str | Path,
    per_cluster: int = 10,
) -> bool:
    """One row of images per cluster (the first ``per_cluster`` members, in data order),
    drawn as one image (a grid of 100 axes took 2-3 s to lay out).

    Without an image shape, a square one is inferred from d; if d is not a square the data
    are not images, nothing is written and False is returned.
    """
    d = x.shape[1]
    if image_shape is None:
        side = math.isqrt(d)
        if side * side != d:
            return False
        image_shape = (side, side)
    if image_shape[0] * image_shape[1] != d:
        return False
    clusters = np.unique(y_pred)
    h, _ = image_shape
    mosaic = gallery_mosaic(x, y_pred, image_shape, per_cluster)
    fig, ax = _pyplot().subplots(figsize=(per_cluster * 0.6, len(clusters) * 0.6))
    ax.imshow(mosaic, cmap="gray_r", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks(np.arange(len(clusters)) * (h + 1) + (h - 1) / 2, [str(c) for c in clusters],
                  fontsize=6)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    _save(fig, path)
    return True


def curves_figure(history: dict[str, list[float]], path: str | Path) -> bool:
    """One panel per recorded series (loss, acc, ...), against its index.

    A series of one value (k-means' inertia, N2D's one fit) is no curve: a line through one
    point draws empty axes. Without any longer series nothing is written and False is
    returned, so the report shows no empty figure.
    """
    keys = [k for k, v in history.items() if len(v) > 1]
    if not keys:
        return False
    fig, axes = _pyplot().subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        ax.plot(np.arange(len(history[key])), history[key])
        ax.set_title(key)
        ax.set_xlabel("update")
    _save(fig, path)
    return True
