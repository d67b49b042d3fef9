"""Prepare stages: raw datasets and corpora -> data/prepared/, with a manifest saying
exactly what went in, what came out and what was skipped and why."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import workflow
from pipeline.data.sentences import Sentence
from pipeline.data.splits import SPLITS, assign
from pipeline.io import BadInput, sha256_file, write_json, write_npy, write_text
from pipeline.stages.common import load_config


def clustering(dataset: str) -> None:
    from pipeline.data.clustering import load_clustering_dataset, n_clusters

    cfg = load_config()
    entry = cfg["clustering"]["datasets"][dataset]
    local = dict(entry)
    for key, file in zip(workflow.CLUSTERING_FORMATS[entry["format"]],
                         workflow.dataset_files(cfg, dataset), strict=True):
        local[key] = file
    x, y = load_clustering_dataset(dataset, local, Path("."))
    out = Path(workflow.path("prepared_clustering", dataset=dataset))
    side = int(round(np.sqrt(x.shape[1])))
    write_npy(out / "x.npy", x)
    write_npy(out / "y.npy", y)
    write_json(out / "manifest.json", {
        "dataset": dataset,
        "n": int(x.shape[0]),
        "d": int(x.shape[1]),
        "n_clusters": int(n_clusters(entry, y)),
        "image_shape": [side, side] if side * side == x.shape[1] else None,
        "label_counts": {str(k): int(v) for k, v in sorted(Counter(y.tolist()).items())},
        "sources": {f: sha256_file(f) for f in workflow.dataset_files(cfg, dataset)},
    })


def _read_corpus(cfg: dict[str, Any], corpus: str) -> tuple[dict[str, list[Sentence]], dict]:
    """Sentences per given file key (train/dev/test), and conversion counts. Every reader
    refuses a file without sentences, or with one id twice, naming the file."""
    entry = cfg["tagging"]["corpora"][corpus]
    fmt = entry["format"]
    report: dict[str, Any] = {}
    if fmt == "label_studio":
        from annotation.snapshot import convert_snapshot

        path = workflow.path("export", name=entry["export"])
        sentences, conversion = convert_snapshot(path, cfg["annotation"]["labels"],
                                                 cfg["annotation"]["conversion"])
        if not sentences:
            raise BadInput(f"{path}: no task left to learn from ({conversion.tasks_in} tasks, "
                           f"skipped: {dict(conversion.skipped)})")
        return {"train": sentences}, conversion.to_dict()
    files = dict(zip([k for k in ("train", "dev", "test") if k in entry],
                     workflow.corpus_files(cfg, corpus), strict=True))
    if fmt == "conllu":
        from pipeline.data.conllu import read_conllu

        aux = tuple(entry.get("aux", ()))
        return {k: read_conllu(p, column=entry["column"], aux=aux)
                for k, p in files.items()}, report
    from pipeline.data.iob2 import read_iob2

    return {k: read_iob2(p) for k, p in files.items()}, report


def split_corpus(given: dict[str, list[Sentence]], dev: float, test: float
                 ) -> dict[str, list[Sentence]]:
    """Fill in the splits a corpus does not give, by a stable hash of sentence ids.

    - only train given: train is split into train/dev/test;
    - train and dev given, no test: the given dev becomes the evaluation split (test),
      and early-stopping data (dev) is carved from train;
    - all three given: used as they are.
    """
    if "test" in given:
        if "dev" in given:
            return {k: given[k] for k in SPLITS}
        carved = {s: [x for x in given["train"] if assign(x.id, dev, 0) == s] for s in SPLITS}
        return {"train": carved["train"], "dev": carved["dev"], "test": given["test"]}
    if "dev" in given:
        carved = {s: [x for x in given["train"] if assign(x.id, dev, 0) == s] for s in SPLITS}
        return {"train": carved["train"], "dev": carved["dev"], "test": given["dev"]}
    return {s: [x for x in given["train"] if assign(x.id, dev, test) == s] for s in SPLITS}


def tagging(corpus: str) -> None:
    cfg = load_config()
    entry = cfg["tagging"]["corpora"][corpus]
    given, conversion = _read_corpus(cfg, corpus)
    split = cfg["tagging"]["split"]
    splits = split_corpus(given, split["dev"], split["test"])
    out = Path(workflow.path("prepared_tagging", corpus=corpus))
    for name, sentences in splits.items():  # all checked before one is written over
        if not sentences:  # a given file has sentences: this split is drawn from train's
            hint = (f"a {name}: file or a larger tagging.split.{name}" if name != "train"
                    else "smaller tagging.split fractions")
            raise BadInput(f"{workflow.corpus_files(cfg, corpus)[0]}: its "
                           f"{len(given['train'])} sentences leave split {name!r} empty; "
                           f"give more sentences, {hint}")
    for name, sentences in splits.items():
        lines = [json.dumps({"id": s.id, "tokens": s.tokens, "tags": s.tags,
                             **({"aux": s.aux} if s.aux else {})}, ensure_ascii=False)
                 for s in sentences]
        write_text(out / f"{name}.jsonl", "\n".join(lines) + "\n")
    tags = sorted({t for s in splits["train"] for t in s.tags})
    write_json(out / "manifest.json", {
        "corpus": corpus,
        "format": entry["format"],
        "scheme": "tags" if entry["format"] == "conllu" else "iob2",
        "tags": tags,
        **({"aux_tags": {name: sorted({t for s in splits["train"] for t in s.aux[name]})
                         for name in entry["aux"]}} if entry.get("aux") else {}),
        "counts": {k: {"sentences": len(v), "tokens": sum(len(s.tokens) for s in v)}
                   for k, v in splits.items()},
        "conversion": conversion,
        "sources": {f: sha256_file(f) for f in workflow.corpus_files(cfg, corpus)},
    })
