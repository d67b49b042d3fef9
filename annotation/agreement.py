"""Inter-annotator agreement on a Label Studio export, in the form UNER publishes.

For every pair of annotators (ref = first by name, pred = second) over the tasks both
annotated: entity-level precision/recall/F1 per label (exact token span and label),
token-level Cohen's kappa on the BIO tags, and every disagreement. Cancelled annotations
and bad tasks are left out and counted; the adjudicated gold follows the same policy as
``tasks_to_sentences``.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from annotation.adjudicate import adjudicate
from annotation.convert import ConversionReport, ReadTask, bio_entities, read_tasks
from pipeline.io import write_json, write_text

Entity = tuple[int, int, str]  # first token, last token + 1, label


def latest_by_annotator(read: ReadTask) -> dict[str, list[str]]:
    """Each annotator's tags on one task; a later annotation by the same person wins."""
    out: dict[str, tuple[Any, list[str]]] = {}
    for cand in read.candidates:
        key = str(cand["annotation"].get("id"))
        key = key.zfill(20) if key.isdigit() else key
        if cand["annotator"] not in out or key > out[cand["annotator"]][0]:
            out[cand["annotator"]] = (key, cand["tags"])
    return {name: tags for name, (_, tags) in out.items()}


def prf(matched: int, n_ref: int, n_pred: int) -> dict[str, Any]:
    """Precision, recall, F1 (None where undefined) with the counts behind them."""
    p = matched / n_pred if n_pred else None
    r = matched / n_ref if n_ref else None
    f = None if p is None or r is None else 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "matched": matched, "ref": n_ref,
            "pred": n_pred}


def kappa(ref: Sequence[str], pred: Sequence[str]) -> float | None:
    """Cohen's kappa over tokens; None when undefined (both annotators used one tag only)."""
    from sklearn.metrics import cohen_kappa_score

    if not ref or len(set(ref) | set(pred)) < 2:
        return None
    value = float(cohen_kappa_score(ref, pred))
    return None if math.isnan(value) else value


def span_text(read: ReadTask, entity: Entity) -> dict[str, Any]:
    start, end = read.tokens[entity[0]][0], read.tokens[entity[1] - 1][1]
    return {"start": start, "end": end, "text": read.text[start:end], "label": entity[2]}


def compare(ref_name: str, pred_name: str, tasks: Sequence[tuple[ReadTask, dict]],
            labels: Sequence[str]) -> dict[str, Any]:
    """Scores and disagreements of one ordered annotator pair on their common tasks."""
    counts = {lab: Counter() for lab in labels}
    ref_tags: list[str] = []
    pred_tags: list[str] = []
    disagreements = []
    for read, by_annotator in tasks:
        ref, pred = by_annotator[ref_name], by_annotator[pred_name]
        ref_tags += ref
        pred_tags += pred
        ref_ents, pred_ents = set(bio_entities(ref)), set(bio_entities(pred))
        for lab in labels:
            counts[lab]["ref"] += sum(e[2] == lab for e in ref_ents)
            counts[lab]["pred"] += sum(e[2] == lab for e in pred_ents)
            counts[lab]["matched"] += sum(e[2] == lab for e in ref_ents & pred_ents)
        if ref_ents != pred_ents:
            disagreements.append({
                "task_id": read.task.get("id"), "sent_id": read.sent_id, "text": read.text,
                "ref": ref_name, "pred": pred_name,
                "ref_only": [span_text(read, e) for e in sorted(ref_ents - pred_ents)],
                "pred_only": [span_text(read, e) for e in sorted(pred_ents - ref_ents)],
            })
    per_label = {lab: prf(c["matched"], c["ref"], c["pred"]) for lab, c in counts.items()}
    total = sum(counts.values(), Counter())
    return {"num_common_tasks": len(tasks), "labels": per_label,
            "micro": prf(total["matched"], total["ref"], total["pred"]),
            "token_kappa": kappa(ref_tags, pred_tags), "disagreements": disagreements}


def mean(values: Iterable[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def agreement(tasks: Iterable[Any], labels: Sequence[str],
              policy: Mapping[str, Any]) -> dict[str, Any]:
    """The whole agreement report as a JSON-ready dict."""
    report = ConversionReport()
    read = list(read_tasks(tasks, labels, policy, report))
    for item in read:
        _, rule = adjudicate(item.candidates, policy["adjudication"]["annotator_priority"])
        report.adjudicated_by[rule] += 1
    annotated = [(item, latest_by_annotator(item)) for item in read]
    multi = [(item, by) for item, by in annotated if len(by) >= 2]
    names = sorted({name for _, by in multi for name in by})
    pairs = {}
    for ref, pred in combinations(names, 2):
        common = [(item, by) for item, by in multi if ref in by and pred in by]
        if common:
            pairs[f"ref:{ref}, pred:{pred}"] = compare(ref, pred, common, labels)
    average = {lab: {k: mean(p["labels"][lab][k] for p in pairs.values())
                     for k in ("precision", "recall", "f1")} for lab in labels}
    return {
        "conversion": report.to_dict(),
        "annotators": sorted({name for _, by in annotated for name in by}),
        "tasks_with_multiple_annotators": len(multi),
        "pairwise": pairs,
        "average": average,
        "average_token_kappa": mean(p["token_kappa"] for p in pairs.values()),
    }


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def to_markdown(result: Mapping[str, Any], source: str, max_disagreements: int) -> str:
    """The human-readable report: counts, one table per pair, the disagreements."""
    conv = result["conversion"]
    lines = [
        "# Inter-annotator agreement", "",
        f"Export: `{source}`", "",
        f"- tasks in the export: {conv['tasks_in']}; usable: {conv['prepared']}; "
        f"skipped: {sum(conv['skipped'].values())} {conv['skipped'] or ''}".rstrip(),
        f"- cancelled (skipped) annotations left out: {conv['cancelled_annotations']}",
        f"- spans snapped to tokens: {conv['snapped_spans']}; rejected: "
        f"{conv['rejected_spans']}",
        f"- annotators: {', '.join(result['annotators']) or 'none'}",
        f"- tasks with two or more annotators: {result['tasks_with_multiple_annotators']}",
        f"- gold chosen by: {conv['adjudicated_by'] or 'nothing to adjudicate'}", "",
    ]
    if not result["pairwise"]:
        lines += ["No task has annotations by two annotators: nothing to compare.", ""]
    for pair, scores in result["pairwise"].items():
        lines += [f"## {pair}", "",
                  f"Common tasks: {scores['num_common_tasks']}; token-level Cohen's kappa: "
                  f"{fmt(scores['token_kappa'])}", "",
                  "| label | precision | recall | F1 | ref spans | pred spans | matched |",
                  "|---|---|---|---|---|---|---|"]
        for lab, s in [*scores["labels"].items(), ("all (micro)", scores["micro"])]:
            lines.append(f"| {lab} | {fmt(s['precision'])} | {fmt(s['recall'])} | "
                         f"{fmt(s['f1'])} | {s['ref']} | {s['pred']} | {s['matched']} |")
        lines.append("")
        shown = scores["disagreements"][:max_disagreements]
        lines += [f"### Disagreements ({len(scores['disagreements'])}, "
                  f"{len(shown)} shown; all in the JSON)", ""]
        for d in shown:
            only = "; ".join(
                [f"ref only: {s['text']!r} {s['label']}" for s in d["ref_only"]]
                + [f"pred only: {s['text']!r} {s['label']}" for s in d["pred_only"]])
            lines.append(f"- task {d['task_id']} ({d['sent_id']}): {only}")
        lines.append("")
    return "\n".join(lines)


def metric_key(*parts: str) -> str:
    """MLflow allows letters, digits, ``_ - . / space`` in names; emails have ``@``."""
    return "/".join(re.sub(r"[^\w\-. ]", "_", p) for p in parts)


def log_mlflow(result: Mapping[str, Any], params: Mapping[str, str], experiment: str,
               artifacts: Sequence[Path]) -> str:
    """One run in ``experiment``: params, per-pair/label scores, kappa; returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db")
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name="agreement") as run:
        mlflow.log_params(dict(params))
        metrics = {"tasks_with_multiple_annotators": result["tasks_with_multiple_annotators"],
                   "tasks_in": result["conversion"]["tasks_in"],
                   "tasks_usable": result["conversion"]["prepared"]}
        for pair, scores in result["pairwise"].items():
            for lab, s in [*scores["labels"].items(), ("micro", scores["micro"])]:
                for k in ("precision", "recall", "f1"):
                    if s[k] is not None:
                        metrics[metric_key(pair, lab, k)] = s[k]
            if scores["token_kappa"] is not None:
                metrics[metric_key(pair, "token_kappa")] = scores["token_kappa"]
        mlflow.log_metrics(metrics)
        for path in artifacts:
            mlflow.log_artifact(str(path))
        return run.info.run_id


def write_report(result: Mapping[str, Any], source: str, out_dir: str | os.PathLike,
                 max_disagreements: int) -> list[Path]:
    """``agreement.md`` and ``agreement.json`` in ``out_dir`` (atomic)."""
    out = Path(out_dir)
    md, js = out / "agreement.md", out / "agreement.json"
    write_text(md, to_markdown(result, source, max_disagreements))
    write_json(js, {"source": source, **result})
    return [md, js]
