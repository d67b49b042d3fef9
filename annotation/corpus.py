"""Corpora -> Label Studio task data for `push`, with optional model pre-annotations.

Every task carries ``data.text`` and ``data.token_spans`` (so the export converts back to
exactly the tokens the model saw), plus ``data.sent_id`` when the corpus has ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from annotation.convert import entity_results, sentence_text, tokenize
from annotation.snapshot import read_snapshot
from pipeline.data.sentences import Sentence

FORMATS = ("text", "iob2", "conllu", "label_studio")
SUFFIXES = {".txt": "text", ".iob2": "iob2", ".conllu": "conllu", ".json": "label_studio"}


def guess_format(path: str | os.PathLike) -> str:
    """The format a file name says (compression suffixes ignored), or ValueError."""
    suffixes = [s for s in Path(path).suffixes if s not in (".xz", ".gz")]
    fmt = SUFFIXES.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the name; pass --format "
                         f"({', '.join(FORMATS)})")
    return fmt


def from_sentences(sentences: Sequence[Sentence]) -> list[dict[str, Any]]:
    out = []
    for sentence in sentences:
        text, spans = sentence_text(sentence)
        out.append({"text": text, "sent_id": sentence.id,
                    "token_spans": [list(span) for span in spans]})
    return out


def read_corpus(path: str | os.PathLike, fmt: str) -> list[dict[str, Any]]:
    """Task data for every text in the corpus, in file order."""
    if fmt == "text":
        from pipeline.data.conllu import open_text

        with open_text(path) as f:
            lines = [line.strip() for line in f]
        return [{"text": line, "token_spans": [list(s) for s in tokenize(line)]}
                for line in lines if line]
    if fmt == "iob2":
        from pipeline.data.iob2 import read_iob2

        return from_sentences(read_iob2(path))
    if fmt == "conllu":
        from pipeline.data.conllu import read_conllu

        return from_sentences(read_conllu(path))
    if fmt == "label_studio":
        data = [t.get("data") for t in read_snapshot(path) if isinstance(t, Mapping)]
        return [{"token_spans": [list(s) for s in tokenize(d["text"])]} | dict(d)
                for d in data if isinstance(d, Mapping) and isinstance(d.get("text"), str)]
    raise ValueError(f"unknown corpus format {fmt!r} (one of {', '.join(FORMATS)})")


def stratified_order(clusters: Sequence[str], seed: int) -> list[int]:
    """Indices that visit every cluster in turn (clusters and members shuffled by ``seed``).

    The first k tasks then cover k different clusters where there are k, so experts see
    varied material first; the order depends only on the cluster ids and the seed.
    """
    rng = random.Random(seed)
    members: dict[str, list[int]] = {}
    for i, cluster in enumerate(clusters):
        members.setdefault(cluster, []).append(i)
    queues = [members[c] for c in sorted(members)]
    rng.shuffle(queues)
    for queue in queues:
        rng.shuffle(queue)
    order: list[int] = []
    while queues:
        order.extend(q.pop() for q in queues)
        queues = [q for q in queues if q]
    return order


def read_clusters(path: str | os.PathLike, n_tasks: int) -> list[str]:
    """One cluster id per line, one line per corpus text."""
    clusters = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    if len(clusters) != n_tasks or not all(clusters):
        raise ValueError(f"{path}: needs one non-empty cluster id per task: {n_tasks} tasks, "
                         f"{len(clusters)} lines")
    return clusters


def model_version(bundle: str | os.PathLike) -> str:
    """The MLflow run id of a tagger bundle, from the ``run.json`` next to it."""
    run_file = Path(bundle).with_name("run.json")
    try:
        return str(json.loads(run_file.read_text(encoding="utf-8"))["run_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{run_file}: need a JSON object with run_id for model_version: "
                         f"{exc}") from exc


def task_id(task: Mapping[str, Any]) -> str:
    """A task's stable id: its ``sent_id``, else a hash of its text (ranking ties, records)."""
    if task.get("sent_id"):
        return str(task["sent_id"])
    return "text-" + hashlib.sha256(task["text"].encode("utf-8")).hexdigest()[:16]


def as_sentences(tasks: Sequence[Mapping[str, Any]]) -> list[Sentence]:
    """The tokens a tagger sees for each task (tags are placeholders)."""
    return [Sentence(task_id(t), [t["text"][s:e] for s, e in t["token_spans"]],
                     ["O"] * len(t["token_spans"])) for t in tasks]


def new_tasks(tasks: Sequence[dict[str, Any]], existing: set[str]) -> list[dict[str, Any]]:
    """The tasks whose text is not in the project yet, each text once, in corpus order."""
    seen, out = set(existing), []
    for task in tasks:
        if task["text"] not in seen:
            seen.add(task["text"])
            out.append(task)
    return out


def rank_tasks(bundle_path: str | os.PathLike | None, tasks: Sequence[Mapping[str, Any]],
               strategy: str, seed: int, settings: Mapping[str, Any], n: int
               ) -> tuple[list[int], Any]:
    """Task indices, most informative first by ``strategy`` (pipeline.active_learning), and
    the model's confidence in each (NaN without a model)."""
    from pipeline.active_learning import rank_pool
    from pipeline.train.tagging import load_bundle

    bundle = load_bundle(bundle_path) if bundle_path else None
    return rank_pool(strategy, bundle, as_sentences(tasks), seed, settings, batch=n)


def predictions(bundle_path: str | os.PathLike, tasks: Sequence[Mapping[str, Any]],
                labels: Sequence[str], interface: Mapping[str, Any],
                batch_size: int) -> list[dict[str, Any]]:
    """One Label Studio prediction per task from a trained tagger (entities of ``labels``)."""
    from pipeline.train.tagging import load_bundle, predict

    version = model_version(bundle_path)
    bundle = load_bundle(bundle_path)
    tagged = predict(bundle, as_sentences(tasks), batch_size)
    out = []
    for task, tags in zip(tasks, tagged, strict=True):
        tags = [t if t[2:] in labels else "O" for t in tags]
        result = entity_results(task["text"], task["token_spans"], tags,
                                f"{version}:{task['text']}", interface["from_name"],
                                interface["to_name"], "prediction")
        out.append({"model_version": version, "result": result})
    return out
