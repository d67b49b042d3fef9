"""The active-learning simulation in the report: a learning curve and a table per corpus.

Per corpus (``active_learning.simulation``): each strategy's score against the tokens
labelled, mean line and min-max band over seeds, the full-data line; the score at 5, 10 and
20 % of the pool's tokens (each seed's curve interpolated linearly between rounds), the
share of the pool's tokens needed to reach 95 % and 99 % of the full-data score, the area
under the curve (the mean score over the simulated range), each strategy against random
paired over seeds (``report.paired``: Wilcoxon and bootstrap), and the successor check.
The numbers come from the rounds' metrics.json and run.json alone and go to results.json
beside the other tables; the figure is drawn from them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pipeline import report, workflow

AT = (0.05, 0.1, 0.2)  # shares of the pool's tokens the table reads the curves at
REACH = (0.95, 0.99)  # shares of the full-data score


def _read(kind: str, **where: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    base = Path(workflow.path(kind, **where))
    return (json.loads((base / "metrics.json").read_text()),
            json.loads((base / "run.json").read_text()))


def _metric(metrics: dict[str, Any]) -> str:
    return "f1" if "f1" in metrics else "accuracy"


def collect(cfg: dict[str, Any], corpus: str) -> dict[str, Any]:
    """Every round's labelled tokens and sentences, score and run id, per strategy and seed;
    the full-data score per seed; the successor's scores."""
    sim = cfg["active_learning"]["simulation"]
    seeds, rounds = cfg["seeds"], range(len(sim["fractions"]))
    full = {seed: _read("al_round", corpus=corpus, strategy="full", seed=seed, round=0)
            for seed in seeds}
    metric = _metric(full[seeds[0]][0])
    pool_tokens = full[seeds[0]][0]["labelled_tokens"]
    curves: dict[str, list[dict[str, Any]]] = {}
    for strategy in sim["strategies"]:
        curves[strategy] = []
        for seed in seeds:
            points = []
            for r in rounds:
                owner = "random" if r == 0 else strategy
                m, run = _read("al_round", corpus=corpus, strategy=owner, seed=seed, round=r)
                points.append({"round": r, "tokens": m["labelled_tokens"],
                               "sentences": m["labelled_sentences"], "score": m[metric],
                               "run_id": run["run_id"]})
            curves[strategy].append({"seed": seed, "points": points})
    successor = []
    if sim["successor"]:
        succ = sim["successor"]
        for r in succ["rounds"]:
            for strategy in dict.fromkeys([succ["strategy"], "random"]):
                for seed in seeds:
                    m, run = _read("al_successor", corpus=corpus, strategy=strategy, seed=seed,
                                   round=r, model=succ["tagger"])
                    successor.append({"round": r, "strategy": strategy, "seed": seed,
                                      "tokens": m["labelled_tokens"], "score": m[metric],
                                      "run_id": run["run_id"]})
    return {"corpus": corpus, "metric": metric, "pool_tokens": pool_tokens,
            "tagger": sim["tagger"], "seeds": seeds,
            "full": [{"seed": s, "score": full[s][0][metric], "run_id": full[s][1]["run_id"]}
                     for s in seeds],
            "curves": curves, "successor": successor,
            "successor_settings": sim["successor"]}


def at(points: list[dict[str, Any]], share: float, pool_tokens: int) -> float | None:
    """The curve's score at ``share`` of the pool's tokens, linear between rounds; None
    outside the simulated range."""
    x = np.array([p["tokens"] for p in points], dtype=float) / pool_tokens
    y = np.array([p["score"] for p in points], dtype=float)
    if share < x[0] or share > x[-1]:
        return None
    return float(np.interp(share, x, y))


def reach(points: list[dict[str, Any]], target: float, pool_tokens: int) -> float | None:
    """The share of the pool's tokens at which the curve first reaches ``target`` (linear
    between rounds); None if it never does within the simulation."""
    previous = None
    for p in points:
        x, y = p["tokens"] / pool_tokens, p["score"]
        if y >= target:
            if previous is None or previous[1] >= target:
                return x
            x0, y0 = previous
            return x0 + (target - y0) * (x - x0) / (y - y0)
        previous = (x, y)
    return None


def area(points: list[dict[str, Any]], pool_tokens: int) -> float:
    """Mean score over the simulated range of token shares (trapezoids)."""
    x = np.array([p["tokens"] for p in points], dtype=float) / pool_tokens
    y = np.array([p["score"] for p in points], dtype=float)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def entries(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """results.json's entry of every corpus the simulation ran on (none by default)."""
    sim = cfg.get("active_learning", {}).get("simulation", {})
    return [analyse(collect(cfg, corpus), cfg["report"]) for corpus in sim.get("corpora", [])]


def analyse(data: dict[str, Any], rc: dict[str, Any]) -> dict[str, Any]:
    """results.json's entry for one corpus: per strategy and seed the table's numbers, and
    the paired comparisons of each strategy with random."""
    pool, alpha = data["pool_tokens"], 1 - rc["confidence"]
    full = float(np.mean([f["score"] for f in data["full"]]))
    rows = []
    for strategy, seeds in data["curves"].items():
        per_seed = [{"seed": s["seed"],
                     **{f"at_{share:g}": at(s["points"], share, pool) for share in AT},
                     **{f"reach_{goal:g}": reach(s["points"], goal * full, pool)
                        for goal in REACH},
                     "auc": area(s["points"], pool),
                     "sentences": [p["sentences"] for p in s["points"]]} for s in seeds]
        rows.append({"strategy": strategy, "per_seed": per_seed})
    random = next((r for r in rows if r["strategy"] == "random"), None)
    for row in rows:
        row["vs_random"] = {}
        if random is None or row is random:
            continue
        for key in [*(f"at_{share:g}" for share in AT), "auc"]:
            a = np.array([s[key] for s in row["per_seed"]], dtype=float)
            b = np.array([s[key] for s in random["per_seed"]], dtype=float)
            if np.isnan(a).any() or np.isnan(b).any():
                continue
            row["vs_random"][key] = report.paired(a, b, alpha, rc["bootstrap_resamples"],
                                                  rc["bootstrap_seed"])
    return {"task": "active_learning", "dataset": data["corpus"], "metric": data["metric"],
            "confidence": rc["confidence"], "pool_tokens": pool, "full_mean": full,
            "tagger": data["tagger"], "data": data, "strategies": rows,
            "successor": _successor(data, rc)}


def _successor(data: dict[str, Any], rc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per successor round: the successor trained on the strategy's selection against random's
    (paired over seeds), beside the loop tagger's own difference on the same selections."""
    settings = data["successor_settings"]
    if not settings:
        return []
    out = []
    for r in settings["rounds"]:
        def scores(strategy: str, r: int = r) -> np.ndarray:
            return np.array([x["score"] for x in data["successor"]
                             if x["round"] == r and x["strategy"] == strategy], dtype=float)

        def own(strategy: str, r: int = r) -> np.ndarray:
            return np.array([s["points"][r]["score"] for s in data["curves"][strategy]])

        a, b = scores(settings["strategy"]), scores("random")
        la, lb = own(settings["strategy"]), own("random")
        args = (1 - rc["confidence"], rc["bootstrap_resamples"], rc["bootstrap_seed"])
        out.append({"round": r, "tagger": settings["tagger"], "strategy": settings["strategy"],
                    "successor": report.paired(a, b, *args), "successor_scores": [a.tolist(),
                                                                                 b.tolist()],
                    "loop": report.paired(la, lb, *args)})
    return out


def _summary(values: list[float | None]) -> str:
    kept = [v for v in values if v is not None]
    if len(kept) < len(values):
        return f"not reached in {len(values) - len(kept)} of {len(values)} seeds"
    return f"{np.mean(kept):.4f} ± {np.std(kept, ddof=1) if len(kept) > 1 else 0.0:.4f}"


def _share(values: list[float | None]) -> str:
    kept = [v for v in values if v is not None]
    if len(kept) < len(values):
        return f"> range in {len(values) - len(kept)} of {len(values)}"
    return f"{100 * np.mean(kept):.1f} % [{100 * min(kept):.1f}, {100 * max(kept):.1f}]"


def table(entry: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per strategy: mean ± std over seeds; each difference to random with its
    Wilcoxon p."""
    head = ["strategy", *(f"{entry['metric']} at {share * 100:g} %" for share in AT),
            *(f"tokens to {goal * 100:g} % of full" for goal in REACH), "AUC",
            "sentences at 10 %", *(f"− random at {share * 100:g} % (p)" for share in AT),
            "− random AUC (p)"]
    rows = []
    for row in entry["strategies"]:
        seeds = row["per_seed"]
        diffs = []
        for key in [*(f"at_{share:g}" for share in AT), "auc"]:
            c = row["vs_random"].get(key)
            diffs.append("·" if c is None else f"{c['mean_diff']:+.4f} ({c['p_wilcoxon']:.3f})")
        rows.append([row["strategy"],
                     *(_summary([s[f"at_{share:g}"] for s in seeds]) for share in AT),
                     *(_share([s[f"reach_{goal:g}"] for s in seeds]) for goal in REACH),
                     _summary([s["auc"] for s in seeds]), _sentences(entry, row), *diffs])
    return head, rows


def _sentences(entry: dict[str, Any], row: dict[str, Any]) -> str:
    """Sentences labelled when the curve passes 10 % of the pool's tokens (the round that
    first has at least that many tokens), mean over seeds."""
    counts = []
    for s in entry["data"]["curves"][row["strategy"]]:
        first = next((p for p in s["points"] if p["tokens"] >= 0.1 * entry["pool_tokens"]),
                     None)
        if first is not None:
            counts.append(first["sentences"])
    return f"{np.mean(counts):.0f}" if counts else "·"


def successor_rows(entry: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["round", "tagger", "selected by", "successor − random (p)", "loop tagger − random (p)"]
    rows = [[str(s["round"]), s["tagger"], f"{entry['tagger']} ({s['strategy']})",
             f"{s['successor']['mean_diff']:+.4f} ({s['successor']['p_wilcoxon']:.3f})",
             f"{s['loop']['mean_diff']:+.4f} ({s['loop']['p_wilcoxon']:.3f})"]
            for s in entry["successor"]]
    return head, rows


def figure(entry: dict[str, Any]) -> Figure:
    """Score against the share of the pool's tokens labelled: per strategy the mean over
    seeds and its min-max band, and the full-data line."""
    data, pool = entry["data"], entry["pool_tokens"]
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    colors = [f"C{i}" for i in range(10)]
    for (strategy, seeds), color in zip(data["curves"].items(), colors * 3, strict=False):
        x = np.mean([[p["tokens"] for p in s["points"]] for s in seeds], axis=0) / pool * 100
        y = np.array([[p["score"] for p in s["points"]] for s in seeds])
        ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=color, alpha=0.15, linewidth=0)
        ax.plot(x, y.mean(axis=0), marker="o", markersize=3, color=color, label=strategy,
                linewidth=2.2 if strategy == "random" else 1.4,
                linestyle="--" if strategy == "random" else "-")
    full = [f["score"] for f in data["full"]]
    ax.axhline(np.mean(full), color="black", linewidth=1, label="full data (mean)")
    ax.axhspan(min(full), max(full), color="black", alpha=0.08, linewidth=0)
    ax.set_xlabel("tokens labelled (% of the pool's)")
    ax.set_ylabel(entry["metric"])
    ax.grid(color="#ddd")
    ax.set_title(f"{entry['dataset']}: {entry['metric']} against tokens labelled "
                 f"({entry['tagger']}, {len(data['seeds'])} seeds; band: min-max)", fontsize=10)
    ax.legend(fontsize=8, ncols=2, loc="lower right")
    return fig


def intro(entry: dict[str, Any]) -> str:
    floor = report.seed_floor(len(entry["data"]["seeds"]), 1 - entry["confidence"])
    return (f"Pool: {entry['pool_tokens']} tokens; full-data {entry['metric']} "
            f"{entry['full_mean']:.4f} (mean over seeds, tagger {entry['tagger']}). Mean ± "
            "std over seeds; tokens as % of the pool's, mean [min, max]; differences to random "
            "paired over seeds with their Wilcoxon p (results.json has the bootstrap "
            f"intervals). {floor}").strip()


def markdown(entry: dict[str, Any]) -> list[str]:
    lines = [f"## Active learning: {entry['dataset']}", "",
             f"![learning curves]({workflow.AL_FIGURE.format(corpus=entry['dataset'])})", "",
             intro(entry), "",
             *report._md_table(*table(entry))]
    head, rows = successor_rows(entry)
    if rows:
        lines += ["", SUCCESSOR, "", *report._md_table(head, rows)]
    return [*lines, ""]


SUCCESSOR = ("Successor check (Lowell et al. 2019): another tagger trained on the strategy's "
             "selection and on random's of the same round, paired over seeds.")


def html(entry: dict[str, Any], image: bytes) -> str:
    head, rows = successor_rows(entry)
    out = [f"<section id='{report._slug('al', entry['dataset'])}'>"
           f"<h2>Active learning: {report._e(entry['dataset'])}</h2>",
           f"<figure class='summary'><img src='{report._data_uri(image)}' "
           f"alt='learning curves of {report._e(entry['dataset'])}'></figure>",
           f"<p>{report._e(intro(entry))}</p>", report._html_table(*table(entry))]
    if rows:
        out += [f"<h3>Successor check</h3><p>{report._e(SUCCESSOR)}</p>",
                report._html_table(head, rows)]
    return "\n".join(out) + "</section>\n"
