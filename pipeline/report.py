"""Results across seeds -> reports/results.{md,csv,json,html}, read like a paper's results.

Per task and dataset: a figure of the main metric (every seed a point, the mean and its
t-interval), every model's mean ± std over seeds with min-max and interval, the paired
comparisons between models over the same seeds as a model x model matrix (Wilcoxon
signed-rank p and a bootstrap interval of the mean difference), and the per-seed rows with
their jobs' figures and the command that re-runs them.

The figures and matrices are drawn from ``analyse``'s numbers alone, which come from the
frame results.csv is written from and are written beside it (results.json). The HTML is one
self-contained file (images embedded, no script), byte-stable for the same inputs, and
escapes everything that comes from data.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from pipeline import workflow
from pipeline.io import write_bytes, write_json, write_text
from pipeline.seeding import numpy_rng
from pipeline.stages.common import load_config

METRICS = {"clustering": ["acc", "nmi", "ari"], "tagging": ["accuracy", "precision", "recall",
                                                             "f1"]}
# What a job's figure file shows, by file name (others are shown by their name).
FIGURE_NAMES = {"curves": "training curve", "embedding": "map", "gallery": "gallery",
                "confusion": "confusion matrix"}
FIGURE_DPI = 100


@dataclass
class Table:
    task: str
    dataset: str
    frame: pd.DataFrame  # one row per (model, seed); metric columns + run_id
    figures: dict[tuple[str, int], list[Path]] = field(default_factory=dict)  # by (model, seed)


def collect(cfg: dict[str, Any]) -> list[Table]:
    tables = []
    clustering = cfg.get("clustering", {})
    for dataset in clustering.get("datasets", {}):
        tables.append(_table("clustering", dataset, cfg["seeds"], clustering["models"],
                             dataset=dataset))
    tagging = cfg.get("tagging", {})
    for corpus in tagging.get("corpora", {}):
        models = workflow.tagging_models(cfg, corpus)
        if models:  # a profile may train none (the active-learning simulation's own jobs)
            tables.append(_table("tagging", corpus, cfg["seeds"], models, corpus=corpus))
    return tables


def _table(task: str, name: str, seeds: list[int], models: list[str], **where: str) -> Table:
    rows, figures = [], {}
    for model, seed in itertools.product(models, seeds):
        base = Path(workflow.path(f"{task}_result", model=model, seed=seed, **where))
        metrics = json.loads((base / "metrics.json").read_text())
        run = json.loads((base / "run.json").read_text())
        row = {"model": model, "seed": seed, "run_id": run["run_id"],
               "train_run_id": run.get("train_run_id", "")}
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        for label, scores in metrics.get("per_type", {}).items():
            row[f"f1[{label}]"] = scores["f1"]
        rows.append(row)
        figures[model, seed] = sorted(base.rglob("*.png"))
    return Table(task, name, pd.DataFrame(rows), figures)


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


def _primary(table: Table) -> str:
    if table.task == "clustering":
        return "acc"
    return "f1" if "f1" in table.frame.columns else "accuracy"


def analyse(table: Table, rc: dict[str, Any]) -> dict[str, Any]:
    """The numbers a table's figure, matrix and headline are drawn from (results.json): the
    main metric of every model and seed as in results.csv, its summary, and every pair."""
    metric = _primary(table)
    models = [{"model": model, "seeds": [int(s) for s in group["seed"]],
               "values": group[metric].astype(float).tolist(),
               **summary(group[metric].to_numpy(float), rc["confidence"])}
              for model, group in table.frame.groupby("model", sort=False)]
    by_seed = table.frame.pivot(index="seed", columns="model", values=metric)
    alpha = 1 - rc["confidence"]
    pairs = []
    for a, b in itertools.combinations([m["model"] for m in models], 2):
        x, y = by_seed[a].to_numpy(float), by_seed[b].to_numpy(float)
        pairs.append({"a": a, "b": b,
                      **paired(x, y, alpha, rc["bootstrap_resamples"], rc["bootstrap_seed"]),
                      "higher": int((x > y).sum()), "lower": int((x < y).sum()), "n": len(x)})
    return {"task": table.task, "dataset": table.dataset, "metric": metric,
            "confidence": rc["confidence"], "models": models, "comparisons": pairs}


def ranked(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Models by mean, best first (ties in configuration order)."""
    return sorted(entry["models"], key=lambda m: -m["mean"])


def ordered_pairs(entry: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every ordered pair (row, column) as row - column: each stored pair and its mirror."""
    out = {}
    for c in entry["comparisons"]:
        out[c["a"], c["b"]] = c
        out[c["b"], c["a"]] = c | {"a": c["b"], "b": c["a"], "mean_diff": -c["mean_diff"],
                                   "ci_low": -c["ci_high"], "ci_high": -c["ci_low"],
                                   "higher": c["lower"], "lower": c["higher"]}
    return out


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def seed_floor(n: int, alpha: float) -> str:
    """Why few seeds cannot be significant: the smallest two-sided Wilcoxon p with n pairs."""
    floor = 2 / 2 ** n
    if floor < alpha:
        return ""
    return (f"With {n} seeds the smallest attainable two-sided p is {floor:.3f}, so no "
            f"difference can be significant at {alpha:.2f}: more seeds are needed for that.")


def headline(entry: dict[str, Any]) -> str:
    """Which model is best on the main metric, how sure, over how many seeds."""
    order = ranked(entry)
    best, others = order[0], order[1:]
    text = (f"Best mean {entry['metric']}: {best['model']}, {best['mean']:.4f} "
            f"({_percent(entry['confidence'])} interval [{best['ci_low']:.4f}, "
            f"{best['ci_high']:.4f}], {best['n']} seeds)")
    if not others:
        return text + "."
    pairs = ordered_pairs(entry)
    above = sum(pairs[best["model"], o["model"]]["significant"] for o in others)
    models = "model" if len(others) == 1 else "models"
    return (f"{text}; significantly above {above} of the {len(others)} other {models} "
            f"(paired over seeds). {seed_floor(best['n'], 1 - entry['confidence'])}").strip()


def comparison_words(c: dict[str, Any], confidence: float) -> str:
    """One ordered pair in a sentence (the matrix cell's hover text)."""
    verdict = "significant" if c["significant"] else "not significant"
    return (f"{c['a']} − {c['b']}: {c['mean_diff']:+.4f} [{c['ci_low']:+.4f}, "
            f"{c['ci_high']:+.4f}] ({_percent(confidence)} bootstrap interval), Wilcoxon "
            f"p = {c['p_wilcoxon']:.3f}: {verdict} at {1 - confidence:.2f}; {c['a']} higher "
            f"in {c['higher']}, lower in {c['lower']} of {c['n']} seeds.")


# --- the summary figure ---

def metric_figure(entry: dict[str, Any]) -> Figure:
    """The main metric per model, best on top: every seed a point, the mean a bar and its
    value, the interval a line. Drawn from ``entry`` (results.json) alone."""
    order = ranked(entry)
    rows = np.arange(len(order))[::-1]
    # matplotlib's object API: no pyplot state, no backend to choose, nothing to close
    fig = Figure(figsize=(7.5, 1.0 + 0.38 * len(order)), layout="constrained")
    ax = fig.subplots()
    xs, ys = [], []
    for row, m in zip(rows, order, strict=True):
        k = len(m["values"])
        xs += m["values"]
        ys += list(row + (np.linspace(-0.18, 0.18, k) if k > 1 else [0.0]))
    ax.scatter(xs, ys, s=16, color="#4878a8", alpha=0.8, zorder=3, gid="seeds",
               label="one seed")
    ax.hlines(rows, [m["ci_low"] for m in order], [m["ci_high"] for m in order],
              color="black", linewidth=1.5, zorder=2, gid="interval",
              label=f"{_percent(entry['confidence'])} interval of the mean")
    ax.plot([m["mean"] for m in order], rows, linestyle="none", marker="|", markersize=14,
            markeredgewidth=2, color="black", zorder=4, gid="mean", label="mean")
    for row, m in zip(rows, order, strict=True):
        ax.text(1.01, row, f"{m['mean']:.4f}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8, gid="mean value")
    ax.set_yticks(rows, [m["model"] for m in order])
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlabel(entry["metric"])
    ax.grid(axis="x", color="#ddd")
    ax.set_title(f"{entry['dataset']}: {entry['metric']} per model", fontsize=10)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig


def png(fig: Figure) -> bytes:
    """PNG bytes with nothing that changes between runs (no software or date stamp)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    return buf.getvalue()


# --- tables shared by the Markdown and the HTML (plain text cells) ---

def _fmt(s: dict[str, float]) -> str:
    return f"{s['mean']:.4f} ± {s['std']:.4f}"


def _metric_columns(table: Table) -> list[str]:
    return [m for m in METRICS[table.task] if m in table.frame.columns]


def summary_rows(table: Table, confidence: float) -> tuple[list[str], list[list[str]]]:
    metrics, primary, pct = _metric_columns(table), _primary(table), _percent(confidence)
    head = ["model", *metrics, f"{primary} [min, max]", f"{primary} {pct} CI"]
    rows = []
    for model, group in table.frame.groupby("model", sort=False):
        s = summary(group[primary].to_numpy(float), confidence)
        rows.append([model, *(_fmt(summary(group[m].to_numpy(float), confidence))
                              for m in metrics),
                     f"[{s['min']:.4f}, {s['max']:.4f}]",
                     f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}]"])
    return head, rows


def per_type_rows(table: Table, confidence: float) -> tuple[list[str], list[list[str]]]:
    columns = [c for c in table.frame.columns if c.startswith("f1[")]
    if not columns:
        return [], []
    rows = [[model, *(_fmt(summary(group[c].to_numpy(float), confidence)) for c in columns)]
            for model, group in table.frame.groupby("model", sort=False)]
    return ["model", *(c[3:-1] for c in columns)], rows


def replicate_command(row: dict[str, Any]) -> str:
    return f"python -m pipeline replicate {row['train_run_id']} {row['run_id']}"


# --- Markdown ---

def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(tables: list[Table], entries: list[dict[str, Any]], cfg: dict[str, Any],
             curves: Sequence[dict[str, Any]] = ()) -> str:
    """``curves``: the active-learning simulation's entries (pipeline.learning_curves)."""
    rc = cfg["report"]
    lines = ["# Results", "",
             f"Mean ± sample standard deviation over seeds {cfg['seeds']}; [min, max]; "
             f"{_percent(rc['confidence'])} t-interval of the mean. Each per-seed row gives the "
             "command that re-runs its training and evaluation jobs (by MLflow run id) and "
             "compares their metrics and bytes. results.html has the figures; results.json "
             "the numbers they are drawn from.", ""]
    for table, entry in zip(tables, entries, strict=True):
        metrics = _metric_columns(table)
        lines += [f"## {_title(table)}", "", headline(entry), "",
                  *_md_table(*summary_rows(table, rc["confidence"]))]
        head, rows = per_type_rows(table, rc["confidence"])
        if rows:
            lines += ["", "Entity F1 per type:", "", *_md_table(head, rows)]
        lines += ["", *_md_matrix(entry)]
        lines += ["", "Per seed (MLflow runs: training, evaluation):", "",
                  *_md_table(["model", "seed", *metrics, "reproduce"],
                             [[r["model"], str(r["seed"]), *(f"{r[m]:.4f}" for m in metrics),
                               f"`{replicate_command(r)}`"]
                              for r in table.frame.to_dict("records")]), ""]
    if curves:
        from pipeline import learning_curves

        for entry in curves:
            lines += learning_curves.markdown(entry)
    return "\n".join(lines) + "\n"


def _md_matrix(entry: dict[str, Any]) -> list[str]:
    order = [m["model"] for m in ranked(entry)]
    if len(order) < 2:
        return []
    pairs = ordered_pairs(entry)

    def cell(a: str, b: str) -> str:
        if a == b:
            return "·"
        c = pairs[a, b]
        diff = f"**{c['mean_diff']:+.4f}**" if c["significant"] else f"{c['mean_diff']:+.4f}"
        return f"{diff} (p {c['p_wilcoxon']:.3f})"

    return [f"Paired comparisons on {entry['metric']} over the same seeds, row − column: mean "
            f"difference (Wilcoxon signed-rank p); bold: significant at "
            f"{1 - entry['confidence']:.2f} (p below it and the bootstrap "
            f"{_percent(entry['confidence'])} interval of the difference excludes 0; the "
            "intervals are in results.json).", "",
            *_md_table(["row − column", *order], [[a, *(cell(a, b) for b in order)]
                                                  for a in order])]


def _title(table: Table) -> str:
    return f"{'Clustering' if table.task == 'clustering' else 'Tagging'}: {table.dataset}"


# --- HTML ---

STYLE = """
body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em 4em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;font-variant-numeric:tabular-nums}
td:first-child,th:first-child{text-align:left}
.scroll{overflow-x:auto}
section{border-top:2px solid #888;margin-top:2em}
.summary img{max-width:100%}
.lead{font-size:110%}
.matrix{font-size:85%}.matrix td{text-align:center;line-height:1.1}
.matrix small{display:block;font-size:72%;opacity:.85}
.matrix th.col{vertical-align:bottom}
.matrix th.col span{writing-mode:vertical-rl;transform:rotate(180deg)}
.pos{background:#d9f0d3}.neg{background:#fde0dc}.zero,.self{background:#eee}
.pos.sig{background:#1a9850;color:#fff}.neg.sig{background:#d73027;color:#fff}
.key span{padding:0 .5em;margin-right:.4em}
.figs{text-align:left;white-space:nowrap}
.fig img{height:44px;border:1px solid #bbb;margin:1px;vertical-align:middle;background:#fff}
.fig .close{display:none}
.fig:target .open img{position:fixed;inset:0;margin:auto;width:auto;height:auto;
 max-width:94vw;max-height:94vh;z-index:3;border:0}
.fig:target .close{display:block;position:fixed;inset:0;background:rgba(0,0,0,.65);z-index:2}
details code{user-select:all;white-space:nowrap;font-size:85%}
summary{cursor:pointer;color:#555}
""".strip()


def _e(value: Any) -> str:
    """Escaped for HTML text and single- or double-quoted attributes."""
    return html.escape(str(value), quote=True)


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts))


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    return ("<div class='scroll'><table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)
            + "</tr>" + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>"
                                for r in rows) + "</table></div>\n")


def _html_matrix(entry: dict[str, Any]) -> str:
    order = [m["model"] for m in ranked(entry)]
    if len(order) < 2:
        return ""
    pairs, conf = ordered_pairs(entry), entry["confidence"]
    out = [f"<h3>Paired comparisons: {_e(entry['metric'])}, row − column</h3>",
           "<p>Mean difference over the same seeds and its Wilcoxon signed-rank p; hover a cell "
           f"for the bootstrap {_percent(conf)} interval and the seed counts. Models best "
           "first. <span class='key'><span class='pos sig'>significantly higher</span>"
           "<span class='pos'>higher</span><span class='neg'>lower</span>"
           "<span class='neg sig'>significantly lower</span></span> "
           f"{_e(seed_floor(ranked(entry)[0]['n'], 1 - conf))}</p>",
           "<div class='scroll'><table class='matrix'><tr><th></th>"
           + "".join(f"<th class='col'><span>{_e(b)}</span></th>" for b in order) + "</tr>"]
    for a in order:
        cells = []
        for b in order:
            if a == b:
                cells.append("<td class='self'></td>")
                continue
            c = pairs[a, b]
            sign = "pos" if c["mean_diff"] > 0 else "neg" if c["mean_diff"] < 0 else "zero"
            cls = sign + (" sig" if c["significant"] else "")
            cells.append(f"<td class='{cls}' title='{_e(comparison_words(c, conf))}'>"
                         f"{c['mean_diff']:+.4f}<small>p {c['p_wilcoxon']:.3f}</small></td>")
        out.append(f"<tr><th>{_e(a)}</th>{''.join(cells)}</tr>")
    return "\n".join(out) + "</table></div>\n"


def _thumbnails(figures: list[Path], row_id: str) -> str:
    """Each figure small in the row; a click shows it full size over the page (CSS
    :target, no script), a click beside it goes back to the row."""
    out = []
    for i, figure in enumerate(figures):
        label = FIGURE_NAMES.get(figure.stem, figure.stem)
        fid = f"{row_id}-f{i}"
        out.append(f"<span class='fig' id='{fid}'><a class='open' href='#{fid}' "
                   f"title='{_e(label)}: {_e(figure)}'><img src='{_data_uri(figure.read_bytes())}'"
                   f" alt='{_e(label)}'></a><a class='close' href='#{row_id}' "
                   "aria-label='close'></a></span>")
    return "".join(out)


def _html_section(table: Table, entry: dict[str, Any], sid: str, confidence: float) -> str:
    metrics = _metric_columns(table)
    out = [f"<section id='{sid}'><h2>{_e(_title(table))}</h2>",
           f"<p class='lead'>{_e(headline(entry))}</p>",
           f"<figure class='summary'><img src='{_data_uri(png(metric_figure(entry)))}' "
           f"alt='{_e(entry['metric'])} per model and seed'></figure>",
           _html_table(*summary_rows(table, confidence))]
    head, rows = per_type_rows(table, confidence)
    if rows:
        out += ["<h3>Entity F1 per type</h3>", _html_table(head, rows)]
    out.append(_html_matrix(entry))
    seed_rows = []
    for i, r in enumerate(table.frame.to_dict("records")):
        row_id = f"{sid}-r{i}"
        figures = table.figures.get((r["model"], r["seed"]), [])
        seed_rows.append(
            f"<tr id='{row_id}'><td>{_e(r['model'])}</td><td>{_e(r['seed'])}</td>"
            + "".join(f"<td>{r[m]:.4f}</td>" for m in metrics)
            + f"<td class='figs'>{_thumbnails(figures, row_id)}</td><td><details>"
            f"<summary>replicate</summary><code>{_e(replicate_command(r))}"
            "</code></details></td></tr>")
    out += ["<h3>Per seed</h3><div class='scroll'><table class='seeds'><tr>"
            + "".join(f"<th>{_e(h)}</th>" for h in ["model", "seed", *metrics, "figures",
                                                    "re-run"]) + "</tr>",
            *seed_rows, "</table></div></section>"]
    return "\n".join(out) + "\n"


def html_report(tables: list[Table], entries: list[dict[str, Any]], cfg: dict[str, Any],
                curves: Sequence[tuple[dict[str, Any], bytes]] = ()) -> str:
    """One self-contained page: a contents list, then a section per dataset or corpus, then
    the active-learning simulation's (``curves``: entries and their figures)."""
    from pipeline import learning_curves
    conf = cfg["report"]["confidence"]
    sids = [_slug(f"s{i}", t.task, t.dataset) for i, t in enumerate(tables)]
    contents = "".join(
        f"<li><a href='#{sid}'>{_e(_title(t))}</a>: {len(e['models'])} models x "
        f"{len(cfg['seeds'])} seeds, {_e(e['metric'])}</li>"
        for t, e, sid in zip(tables, entries, sids, strict=True)) + "".join(
        f"<li><a href='#{_slug('al', e['dataset'])}'>Active learning: {_e(e['dataset'])}</a>: "
        f"{len(e['strategies'])} strategies x {len(cfg['seeds'])} seeds, {_e(e['metric'])}</li>"
        for e, _ in curves)
    body = (f"<h1>Results</h1><p>Seeds {_e(cfg['seeds'])}. Each section opens with its main "
            f"metric per model (every seed a point, the mean and its {_percent(conf)} "
            "t-interval), then the mean ± sample standard deviation of every metric, the paired "
            "comparisons, and every seed's row with its job's figures (click one for full size) "
            "and the command that re-runs its training and evaluation jobs and compares their "
            "metrics and bytes.</p>"
            f"<nav><h2>Contents</h2><ol>{contents}</ol></nav>\n"
            + "".join(_html_section(t, e, sid, conf)
                      for t, e, sid in zip(tables, entries, sids, strict=True))
            + "".join(learning_curves.html(e, image) for e, image in curves))
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Results</title>"
            f"<style>{STYLE}</style></head><body>\n{body}</body></html>\n")


def csv(tables: list[Table]) -> str:
    frames = [t.frame.assign(task=t.task, dataset=t.dataset) for t in tables]
    front = ["task", "dataset", "model", "seed"]
    if not frames:
        return ",".join(front) + "\n"
    long = pd.concat(frames, ignore_index=True)
    cols = front + [c for c in long.columns if c not in front]
    # full precision (shortest round-trip repr): the figures show exactly these numbers
    return long[cols].to_csv(index=False)


def run() -> None:
    from pipeline import learning_curves

    cfg = load_config()
    tables = collect(cfg)
    entries = [analyse(t, cfg["report"]) for t in tables]
    curves = learning_curves.entries(cfg)
    images = [png(learning_curves.figure(e)) for e in curves]
    out = Path(workflow.path("report"))
    for entry, image in zip(curves, images, strict=True):
        write_bytes(out / workflow.AL_FIGURE.format(corpus=entry["dataset"]), image)
    write_text(out / "results.csv", csv(tables))
    write_json(out / "results.json", entries + curves)
    write_text(out / "results.html", html_report(tables, entries, cfg,
                                                 list(zip(curves, images, strict=True))))
    write_text(out / "results.md", markdown(tables, entries, cfg, curves))
