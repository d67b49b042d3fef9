"""Results across seeds -> reports/results.{md,csv,html}, read like a paper's tables.

Per task and dataset: every model's mean ± std over seeds, min-max, a 95% confidence
interval (t distribution), the per-seed values with their MLflow runs, and paired
comparisons between models over the same seeds (Wilcoxon signed-rank and a bootstrap
interval of the mean difference), stated in words.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipeline import workflow
from pipeline.io import write_text
from pipeline.seeding import numpy_rng
from pipeline.stages.common import load_config

METRICS = {"clustering": ["acc", "nmi", "ari"], "tagging": ["accuracy", "precision", "recall",
                                                             "f1"]}
PRIMARY = {"clustering": "acc", "tagging_iob2": "f1", "tagging_tags": "accuracy"}


@dataclass
class Table:
    task: str
    dataset: str
    frame: pd.DataFrame  # one row per (model, seed); metric columns + run_id


def collect(cfg: dict[str, Any]) -> list[Table]:
    tables = []
    clustering = cfg.get("clustering", {})
    for dataset in clustering.get("datasets", {}):
        tables.append(Table("clustering", dataset, _frame(
            "clustering_result", cfg["seeds"], clustering["models"], dataset=dataset)))
    tagging = cfg.get("tagging", {})
    for corpus in tagging.get("corpora", {}):
        tables.append(Table("tagging", corpus, _frame(
            "tagging_result", cfg["seeds"], workflow.tagging_models(cfg, corpus),
            corpus=corpus)))
    return tables


def _frame(kind: str, seeds: list[int], models: list[str], **where: str) -> pd.DataFrame:
    rows = []
    for model, seed in itertools.product(models, seeds):
        base = Path(workflow.path(kind, model=model, seed=seed, **where))
        metrics = json.loads((base / "metrics.json").read_text())
        run = json.loads((base / "run.json").read_text())
        row = {"model": model, "seed": seed, "run_id": run["run_id"],
               "train_run_id": run.get("train_run_id", "")}
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        for label, scores in metrics.get("per_type", {}).items():
            row[f"f1[{label}]"] = scores["f1"]
        rows.append(row)
    return pd.DataFrame(rows)


def summary(values: np.ndarray, confidence: float) -> dict[str, float]:
    n = len(values)
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": float(np.min(values)), "max": float(np.max(values)),
            "ci_low": mean - half, "ci_high": mean + half, "n": n}


def paired(a: np.ndarray, b: np.ndarray, alpha: float, resamples: int, seed: int) -> dict:
    """Compare two models run on the same seeds: is a - b different from zero?"""
    diff = a - b
    rng = numpy_rng(seed, "bootstrap")
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    if np.allclose(diff, 0):
        p = 1.0
    else:
        p = float(stats.wilcoxon(a, b, zero_method="zsplit").pvalue)
    return {"mean_diff": float(diff.mean()), "ci_low": float(low), "ci_high": float(high),
            "p_wilcoxon": p, "significant": bool(p < alpha and (low > 0 or high < 0))}


def _fmt(s: dict[str, float]) -> str:
    return f"{s['mean']:.4f} ± {s['std']:.4f}"


def _metric_columns(table: Table) -> list[str]:
    return [m for m in METRICS[table.task] if m in table.frame.columns]


def _primary(table: Table) -> str:
    if table.task == "clustering":
        return PRIMARY["clustering"]
    return "f1" if "f1" in table.frame.columns else "accuracy"


def markdown(tables: list[Table], cfg: dict[str, Any]) -> str:
    rc = cfg["report"]
    lines = ["# Results", "",
             f"Mean ± sample standard deviation over seeds {cfg['seeds']}; "
             f"[min, max]; {int(rc['confidence'] * 100)}% t-interval of the mean. "
             "Each per-seed row gives the command that re-runs its training and evaluation "
             "jobs (by MLflow run id) and compares their metrics and bytes.", ""]
    for table in tables:
        metrics = _metric_columns(table)
        title = "Clustering" if table.task == "clustering" else "Tagging"
        lines += [f"## {title}: {table.dataset}", ""]
        lines.append("| model | " + " | ".join(metrics) + f" | {_primary(table)} [min, max] | "
                     f"{_primary(table)} {int(rc['confidence'] * 100)}% CI |")
        lines.append("|---" * (len(metrics) + 3) + "|")
        for model, group in table.frame.groupby("model", sort=False):
            cells = [_fmt(summary(group[m].to_numpy(float), rc["confidence"])) for m in metrics]
            s = summary(group[_primary(table)].to_numpy(float), rc["confidence"])
            lines.append(f"| {model} | " + " | ".join(cells)
                         + f" | [{s['min']:.4f}, {s['max']:.4f}] | "
                           f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}] |")
        per_type = [c for c in table.frame.columns if c.startswith("f1[")]
        if per_type:
            lines += ["", "Entity F1 per type:", "",
                      "| model | " + " | ".join(c[3:-1] for c in per_type) + " |",
                      "|---" * (len(per_type) + 1) + "|"]
            for model, group in table.frame.groupby("model", sort=False):
                cells = [_fmt(summary(group[c].to_numpy(float), rc["confidence"]))
                         for c in per_type]
                lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines += ["", "Per seed (MLflow runs: training, evaluation):", "",
                  "| model | seed | " + " | ".join(metrics) + " | reproduce |",
                  "|---" * (len(metrics) + 3) + "|"]
        for row in table.frame.itertuples(index=False):
            r = row._asdict()
            lines.append(f"| {r['model']} | {r['seed']} | "
                         + " | ".join(f"{r[m]:.4f}" for m in metrics)
                         + f" | `python -m pipeline replicate {r['train_run_id']} "
                           f"{r['run_id']}` |")
        lines += ["", *comparisons(table, rc), ""]
    return "\n".join(lines) + "\n"


def comparisons(table: Table, rc: dict[str, Any]) -> list[str]:
    metric = _primary(table)
    frame = table.frame.pivot(index="seed", columns="model", values=metric)
    models = list(dict.fromkeys(table.frame["model"]))
    if len(models) < 2:
        return []
    alpha = 1 - rc["confidence"]
    out = [f"Paired comparisons on {metric} over the same seeds (difference row - column; "
           f"Wilcoxon signed-rank, bootstrap {int(rc['confidence'] * 100)}% interval of the "
           "mean difference):", ""]
    for a, b in itertools.combinations(models, 2):
        x, y = frame[a].to_numpy(float), frame[b].to_numpy(float)
        c = paired(x, y, alpha, rc["bootstrap_resamples"], rc["bootstrap_seed"])
        verdict = "significant" if c["significant"] else "not significant"
        floor = ""
        if not c["significant"] and len(frame) < 6:
            floor = (f" (with {len(frame)} seeds the smallest attainable two-sided "
                     f"p is {2 / 2 ** len(frame):.3f})")
        out.append(f"- {a} vs {b}: {c['mean_diff']:+.4f} "
                   f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], p = {c['p_wilcoxon']:.3f}: "
                   f"{verdict} at {alpha:.2f}{floor}; {a} higher in {int((x > y).sum())}, "
                   f"lower in {int((x < y).sum())} of {len(x)} seeds.")
    return out


def csv(tables: list[Table]) -> str:
    frames = [t.frame.assign(task=t.task, dataset=t.dataset) for t in tables]
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    front = ["task", "dataset", "model", "seed"]
    cols = front + [c for c in long.columns if c not in front]
    return long[cols].to_csv(index=False, float_format="%.6f")


def _figures(table: Table, seed: int) -> list[Path]:
    if table.task == "clustering":
        return sorted(p for model in dict.fromkeys(table.frame["model"]) for p in Path(
            workflow.path("clustering_result", dataset=table.dataset, model=model, seed=seed),
            "figures").glob("*.png"))
    return [Path(workflow.path("tagging_result", corpus=table.dataset, model=model, seed=seed),
                 "confusion.png") for model in dict.fromkeys(table.frame["model"])]


def html_report(md: str, tables: list[Table], cfg: dict[str, Any]) -> str:
    """The markdown tables as HTML, plus each model's figures for the first seed, inlined."""
    from markdown_it import MarkdownIt

    # html False: labels and names come from data files; raw HTML in them is shown, not run.
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    seed = cfg["seeds"][0]
    for table in tables:
        body += f"<h2>Figures: {html.escape(table.dataset)} (seed {seed})</h2>\n"
        for png in _figures(table, seed):
            if png.exists():
                data = base64.b64encode(png.read_bytes()).decode()
                body += (f"<figure><img src='data:image/png;base64,{data}' style='max-width:48%'>"
                         f"<figcaption>{html.escape(str(png))}</figcaption></figure>\n")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Results</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def run() -> None:
    cfg = load_config()
    tables = collect(cfg)
    md = markdown(tables, cfg)
    out = Path(workflow.path("report"))
    write_text(out / "results.csv", csv(tables))
    write_text(out / "results.html", html_report(md, tables, cfg))
    write_text(out / "results.md", md)

