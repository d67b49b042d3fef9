"""Tagging scores: token accuracy always; strict IOB2 entity P/R/F1 (seqeval) for entities."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import numpy as np

from pipeline.io import atomic_path


def check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


def tagging_metrics(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str
) -> dict:
    """``accuracy``; for scheme "iob2" also micro ``precision``/``recall``/``f1`` over exact
    entity spans (strict mode: a boundary or type error is a miss and a false positive) and
    ``per_type`` {type: {precision, recall, f1, support}}."""
    if scheme not in ("iob2", "tags"):
        raise ValueError(f"scheme must be 'iob2' or 'tags', got {scheme!r}")
    check_aligned(gold, pred)
    tokens = sum(len(g) for g in gold)
    correct = sum(a == b for g, p in zip(gold, pred, strict=True)
                  for a, b in zip(g, p, strict=True))
    out: dict = {"accuracy": correct / tokens if tokens else 0.0}
    if scheme == "iob2":
        # seqeval imports scikit-learn (a second per job): POS jobs never need it.
        from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
        from seqeval.scheme import IOB2

        y_true, y_pred = [list(g) for g in gold], [list(p) for p in pred]
        kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
        out["precision"] = float(precision_score(y_true, y_pred, **kw))
        out["recall"] = float(recall_score(y_true, y_pred, **kw))
        out["f1"] = float(f1_score(y_true, y_pred, **kw))
        report = classification_report(y_true, y_pred, output_dict=True, **kw)
        out["per_type"] = {
            name: {"precision": float(r["precision"]), "recall": float(r["recall"]),
                   "f1": float(r["f1-score"]), "support": int(r["support"])}
            for name, r in sorted(report.items()) if not name.endswith(" avg")
        }
    return out


def confusion_figure(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], path: str | os.PathLike
) -> None:
    """Token-level confusion matrix as a PNG: colour is the row (gold) share, text the count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_aligned(gold, pred)
    pairs = Counter((a, b) for g, p in zip(gold, pred, strict=True)
                    for a, b in zip(g, p, strict=True))
    labels = sorted({a for a, _ in pairs} | {b for _, b in pairs})
    index = {t: i for i, t in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for (a, b), n in pairs.items():
        counts[index[a], index[b]] = n
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.0 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)
