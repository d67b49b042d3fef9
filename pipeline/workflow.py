"""The DAG's facts in one place: file layout, and what each stage depends on.

The Snakefile, the stage commands (``pipeline.cli``) and the dvc.yaml generator all
read these, so a path or a stage's parameter list is written down once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from pipeline.config import CLUSTERING_FORMATS, flatten, get

# Where everything lands. Wildcards: {name} export, {dataset}, {corpus}, {model}, {seed}.
PATHS = {
    "export": "data/annotations/{name}.json",
    "raw": "data/raw/{group}/{name}/{key}/{file}",
    "prepared_clustering": "data/prepared/clustering/{dataset}",
    "prepared_tagging": "data/prepared/tagging/{corpus}",
    "autoencoder": "models/autoencoder/{dataset}/seed{seed}",
    "clustering_model": "models/clustering/{dataset}/{model}/seed{seed}",
    "tagger": "models/tagging/{corpus}/{model}/seed{seed}",
    "clustering_result": "results/clustering/{dataset}/{model}/seed{seed}",
    "tagging_result": "results/tagging/{corpus}/{model}/seed{seed}",
    "report": "reports",
}

# The fixed directories above the outputs (where killed writes may leave temporaries).
OUTPUT_ROOTS = sorted({p.split("{")[0].rstrip("/") for p in PATHS.values()})

# Files inside those directories. Each stage writes exactly these (atomically); a name
# without a suffix is a directory.
FILES = {
    "prepared_clustering": ["x.npy", "y.npy", "manifest.json"],
    "prepared_tagging": ["train.jsonl", "dev.jsonl", "test.jsonl", "manifest.json"],
    "autoencoder": ["weights.pt", "history.json", "run.json"],
    "clustering_model": ["state.pt", "predictions.npy", "embedding.npy", "history.json",
                         "run.json"],
    "tagger": ["model.pt", "history.json", "run.json"],
    "clustering_result": ["metrics.json", "run.json", "figures"],
    "tagging_result": ["metrics.json", "predictions.conll", "confusion.png", "run.json"],
    "report": ["results.md", "results.csv", "results.html"],
}

# Clustering methods that start from the shared pretrained autoencoder.
USES_AUTOENCODER = {"ae_kmeans", "dec", "dec_da", "idec", "dcn", "n2d"}

# Source files each stage's result depends on: a change reruns that stage (and what follows).
CODE = {
    "export": ["annotation/convert.py", "pipeline/stages/export.py"],
    "fetch": ["pipeline/data/fetch.py"],
    "prepare_clustering": ["pipeline/data/clustering.py", "pipeline/stages/prepare.py"],
    "prepare_tagging": [
        "pipeline/data/conllu.py", "pipeline/data/iob2.py", "pipeline/data/splits.py",
        "annotation/convert.py", "pipeline/stages/prepare.py",
    ],
    "pretrain": [
        "pipeline/models/autoencoder.py", "pipeline/data/augment.py",
        "pipeline/train/clustering.py", "pipeline/stages/clustering.py", "pipeline/seeding.py",
        "pipeline/numerics.py",
    ],
    "train_clustering": [
        "pipeline/models/autoencoder.py", "pipeline/data/augment.py", "pipeline/models/dec.py",
        "pipeline/models/dcn.py", "pipeline/train/clustering.py", "pipeline/stages/clustering.py",
        "pipeline/seeding.py", "pipeline/numerics.py",
    ],
    "evaluate_clustering": ["pipeline/evaluate/clustering.py", "pipeline/stages/clustering.py",
                            "pipeline/numerics.py"],
    "train_tagger": [
        "pipeline/models/tagger.py", "pipeline/models/crf.py", "pipeline/train/tagging.py",
        "pipeline/stages/tagging.py", "pipeline/seeding.py", "pipeline/numerics.py",
    ],
    "evaluate_tagger": [
        "pipeline/evaluate/tagging.py", "pipeline/train/tagging.py", "pipeline/stages/tagging.py",
        "pipeline/numerics.py",
    ],
    "report": ["pipeline/report.py"],
}


def code(stage: str) -> list[str]:
    return [p for p in CODE[stage] if os.path.exists(p)]


def path(kind: str, **wildcards: Any) -> str:
    return PATHS[kind].format(**wildcards)


def files(kind: str, **wildcards: Any) -> list[str]:
    base = path(kind, **wildcards)
    return [f"{base}/{name}" for name in FILES[kind]]


# --- parameters: the params.yaml keys each stage depends on (logged, and rerun triggers) ---

def param_keys(stage: str, cfg: Mapping[str, Any], **w: Any) -> list[str]:
    if stage == "export":
        return ["annotation.labels", f"annotation.exports.{w['name']}", "annotation.conversion"]
    if stage == "fetch":
        return [f"{w['group']}.{'datasets' if w['group'] == 'clustering' else 'corpora'}"
                f".{w['name']}.{w['key']}"]
    if stage == "prepare_clustering":
        return [f"clustering.datasets.{w['dataset']}"]
    if stage == "prepare_tagging":
        keys = [f"tagging.corpora.{w['corpus']}", "tagging.split"]
        if get(cfg, f"tagging.corpora.{w['corpus']}")["format"] == "label_studio":
            keys += ["annotation.labels", "annotation.conversion"]
        return keys
    if stage == "pretrain":
        return ["device", "threads", "numerics", "clustering.autoencoder"]
    if stage == "train_clustering":
        keys = ["device", "threads", "numerics", f"clustering.methods.{w['model']}"]
        if w["model"] in USES_AUTOENCODER:
            keys.append("clustering.autoencoder")
        return keys
    if stage == "evaluate_clustering":
        return ["threads", "numerics", "clustering.evaluation"]
    if stage == "train_tagger":
        return ["device", "threads", "numerics", "tagging.model", "tagging.trainer",
                f"tagging.variants.{w['model']}", f"tagging.corpora.{w['corpus']}"]
    if stage == "evaluate_tagger":
        return ["threads", "numerics", "tagging.evaluation"]
    if stage == "report":
        return ["seeds", "report"]
    raise KeyError(stage)


def param_values(stage: str, cfg: Mapping[str, Any], **w: Any) -> dict[str, str]:
    """Flattened values of the stage's keys (what MLflow logs and Snakemake compares)."""
    values: dict[str, str] = {}
    for key in param_keys(stage, cfg, **w):
        values.update(flatten(get(cfg, key), key))
    return values


# --- data files: local paths, or url entries fetched into data/raw ---

def raw_file(group: str, name: str, key: str, spec: Any) -> str:
    """Where a data file lives locally: its path, or data/raw/... for a url entry."""
    if isinstance(spec, str):
        return spec
    filename = PurePosixPath(urlparse(spec["url"]).path).name or "download"
    return path("raw", group=group, name=name, key=key, file=filename)


def dataset_files(cfg: Mapping[str, Any], dataset: str) -> list[str]:
    entry = cfg["clustering"]["datasets"][dataset]
    return [raw_file("clustering", dataset, key, entry[key])
            for key in CLUSTERING_FORMATS[entry["format"]]]


def corpus_files(cfg: Mapping[str, Any], corpus: str) -> list[str]:
    entry = cfg["tagging"]["corpora"][corpus]
    if entry["format"] == "label_studio":
        return [path("export", name=entry["export"])]
    return [raw_file("tagging", corpus, key, entry[key])
            for key in ("train", "dev", "test") if key in entry]


def file_spec(cfg: Mapping[str, Any], group: str, name: str, key: str) -> Any:
    section = "datasets" if group == "clustering" else "corpora"
    return cfg[group][section][name][key]


def label_studio_exports(cfg: Mapping[str, Any]) -> list[str]:
    corpora = cfg.get("tagging", {}).get("corpora", {})
    return sorted({c["export"] for c in corpora.values() if c["format"] == "label_studio"})
