"""Clustering metrics (ACC, NMI, ARI) and the figures the report shows for each run."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

from pipeline.io import atomic_path  # noqa: E402


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


def _save(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


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
    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    for ax, colours, title in ((axes[0], y_pred, "clusters"), (axes[1], y_true, "true labels")):
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, cmap="tab10", s=3, linewidths=0)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, path)


def gallery_figure(
    x: np.ndarray,
    y_pred: np.ndarray,
    image_shape: tuple[int, int] | None,
    path: str | Path,
    per_cluster: int = 10,
) -> bool:
    """One row of images per cluster (the first ``per_cluster`` members, in data order).

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
    fig, axes = plt.subplots(
        len(clusters),
        per_cluster,
        figsize=(per_cluster * 0.6, len(clusters) * 0.6),
        squeeze=False,
    )
    for row, cluster in enumerate(clusters):
        members = np.flatnonzero(y_pred == cluster)[:per_cluster]
        for col in range(per_cluster):
            ax = axes[row, col]
            ax.axis("off")
            if col < members.size:
                ax.imshow(x[members[col]].reshape(image_shape), cmap="gray_r")
        axes[row, 0].set_title(f"{cluster}", fontsize=6, loc="left")
    _save(fig, path)
    return True


def curves_figure(history: dict[str, list[float]], path: str | Path) -> None:
    """One panel per recorded series (loss, acc, ...), against its index."""
    keys = [k for k, v in history.items() if len(v) > 0]
    fig, axes = plt.subplots(
        1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3), squeeze=False
    )
    for ax, key in zip(axes[0], keys, strict=False):
        ax.plot(np.arange(len(history[key])), history[key])
        ax.set_title(key)
        ax.set_xlabel("update")
    _save(fig, path)
