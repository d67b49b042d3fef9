"""The DAG's facts in one place: file layout, and what each stage depends on.

The Snakefile, the stage commands (``pipeline.cli``) and the dvc.yaml generator all
read these, so a path or a stage's parameter list is written down once.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import cache
from pathlib import Path, PurePosixPath
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
    "al_round": "results/active_learning/{corpus}/{strategy}/seed{seed}/round{round}",
    "al_successor": ("results/active_learning/{corpus}/{strategy}/seed{seed}/round{round}/"
                     "successor/{model}"),
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
    "al_round": ["selection.json", "model.pt", "history.json", "metrics.json", "run.json"],
    "al_successor": ["model.pt", "history.json", "metrics.json", "run.json"],
    "report": ["results.md", "results.csv", "results.json", "results.html"],
}

# The report's learning-curve figure of each corpus the active-learning simulation runs on.
AL_FIGURE = "active_learning_{corpus}.png"


def report_files(cfg: Mapping[str, Any]) -> list[str]:
    """The report's files: FILES["report"] and a learning-curve figure per simulated corpus."""
    corpora = cfg.get("active_learning", {}).get("simulation", {}).get("corpora", [])
    return [*FILES["report"], *(AL_FIGURE.format(corpus=c) for c in corpora)]


# Clustering methods that start from the shared pretrained autoencoder.
USES_AUTOENCODER = {"ae_kmeans", "dec", "dec_da", "idec", "dcn", "n2d"}

# The module that runs each stage. A stage's code dependencies are the project's source files
# that module imports, directly or through other project modules (``code``): derived from the
# sources, so a new import can never be missing from the Snakefile's inputs or dvc.yaml.
STAGE_MODULES = {
    "export": "pipeline.stages.export",
    "fetch": "pipeline.stages.fetch",
    "prepare_clustering": "pipeline.stages.prepare",
    "prepare_tagging": "pipeline.stages.prepare",
    "pretrain": "pipeline.stages.clustering",
    "train_clustering": "pipeline.stages.clustering",
    "evaluate_clustering": "pipeline.stages.clustering",
    "train_tagger": "pipeline.stages.tagging",
    "evaluate_tagger": "pipeline.stages.tagging",
    "al_round": "pipeline.stages.active_learning",
    "al_successor": "pipeline.stages.active_learning",
    "report": "pipeline.report",
}
PACKAGES = ("pipeline", "annotation")
ROOT = Path(__file__).resolve().parents[1]


def _source(module: str) -> Path | None:
    """The file of a project module (``a.b`` -> a/b.py or a/b/__init__.py), if it is one."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _project_imports(source: Path) -> tuple[str, ...]:
    """The project modules one source file imports, at any depth of its code (imports
    inside functions count). Parsed once per file: stages share most of their files."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return tuple(name for name in names if name.split(".")[0] in PACKAGES)


@cache
def imported_sources(module: str) -> tuple[str, ...]:
    """Repository-relative paths of ``module`` and every project module it imports,
    transitively."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        source = _source(todo.pop())
        if source is None or source in seen:
            continue
        seen.add(source)
        todo += _project_imports(source)
    return tuple(sorted(p.relative_to(ROOT).as_posix() for p in seen))


def code(stage: str) -> list[str]:
    return list(imported_sources(STAGE_MODULES[stage]))


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
        keys = ["device", "threads", "numerics", "tagging.model", "tagging.trainer",
                f"tagging.variants.{w['model']}", f"tagging.corpora.{w['corpus']}"]
        if cfg["tagging"]["variants"][w["model"]].get("transfer"):
            keys.append("tagging.transfer_corpus")
        return keys
    if stage == "evaluate_tagger":
        return ["threads", "numerics", "tagging.evaluation"]
    if stage in ("al_round", "al_successor"):
        sim = "active_learning.simulation"
        model = w["model"] if stage == "al_successor" else get(cfg, f"{sim}.tagger")
        own = ([f"{sim}.successor"] if stage == "al_successor" else
               ["active_learning.query", f"{sim}.tagger", f"{sim}.fractions", f"{sim}.warm_start"])
        return ["device", "threads", "numerics", "tagging.model", "tagging.trainer",
                f"tagging.variants.{model}", f"tagging.corpora.{w['corpus']}", "tagging.split",
                "tagging.evaluation", *own]
    if stage == "report":
        al = cfg.get("active_learning", {}).get("simulation", {}).get("corpora")
        return ["seeds", "report", *(["active_learning.simulation"] if al else [])]
    raise KeyError(stage)


def param_values(stage: str, cfg: Mapping[str, Any], **w: Any) -> dict[str, str]:
    """Flattened values of the stage's keys (what MLflow logs and Snakemake compares)."""
    values: dict[str, str] = {}
    for key in param_keys(stage, cfg, **w):
        values.update(flatten(get(cfg, key), key))
    return values


# --- which taggers a corpus gets, and what a transfer variant starts from ---

def transfer_source(cfg: Mapping[str, Any], model: str, seed: Any) -> str | None:
    """The model file a transfer variant starts from: the variant it names, trained with the
    same seed on ``tagging.transfer_corpus``; None for variants without ``transfer``."""
    base = cfg["tagging"]["variants"][model].get("transfer")
    if not base:
        return None
    return f"{path('tagger', corpus=cfg['tagging']['transfer_corpus'], model=base, seed=seed)}" \
        "/model.pt"


def tagging_models(cfg: Mapping[str, Any], corpus: str) -> list[str]:
    """The variants a corpus is trained with: ``tagging.models``, except transfer variants
    on the transfer corpus itself (they would start from their own data)."""
    tagging = cfg["tagging"]
    return [m for m in tagging["models"]
            if not (tagging["variants"][m].get("transfer")
                    and corpus == tagging.get("transfer_corpus"))]


# --- the active-learning simulation's jobs (active_learning.simulation) ---

def al_previous(corpus: str, strategy: str, seed: Any, round_: Any) -> str | None:
    """The round a round builds on (None for round 0 and the full-data line). Round 0, the
    random seed set, is random's: every strategy starts from the same seed set and model."""
    round_ = int(round_)
    if round_ == 0 or strategy == "full":
        return None
    owner = "random" if round_ == 1 else strategy
    return path("al_round", corpus=corpus, strategy=owner, seed=seed, round=round_ - 1)


def al_round_inputs(corpus: str, strategy: str, seed: Any, round_: Any) -> list[str]:
    """A round's inputs besides its code: the prepared corpus and the previous round's
    selection and model."""
    previous = al_previous(corpus, strategy, seed, round_)
    own = [f"{previous}/selection.json", f"{previous}/model.pt"] if previous else []
    return [*files("prepared_tagging", corpus=corpus), *own]


def al_jobs(cfg: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every simulation job whose metrics the report reads: each strategy's rounds from 1
    (round 0 once, as random's), the full-data line, and the successor check (its variant
    on the named strategy's and on random's selections); none without simulation corpora."""
    sim = cfg.get("active_learning", {}).get("simulation", {})
    jobs: list[tuple[str, dict[str, Any]]] = []
    for corpus in sim.get("corpora", []):
        for seed in cfg["seeds"]:
            where = {"corpus": corpus, "seed": seed}
            jobs.append(("al_round", {**where, "strategy": "full", "round": 0}))
            jobs.append(("al_round", {**where, "strategy": "random", "round": 0}))
            jobs += [("al_round", {**where, "strategy": strategy, "round": r})
                     for strategy in sim["strategies"] for r in range(1, len(sim["fractions"]))]
            successor = sim["successor"]
            if successor:
                jobs += [("al_successor", {**where, "strategy": strategy, "round": r,
                                           "model": successor["tagger"]})
                         for strategy in dict.fromkeys([successor["strategy"], "random"])
                         for r in successor["rounds"]]
    return jobs


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


def export_files(cfg: Mapping[str, Any], name: str) -> list[str]:
    """The export stage's file input: the snapshot, unless it reads a server."""
    entry = cfg["annotation"]["exports"][name]
    return [entry["snapshot"]] if entry["source"] == "snapshot" else []


def from_server(cfg: Mapping[str, Any], name: str) -> bool:
    return cfg["annotation"]["exports"][name]["source"] == "server"


def label_studio_exports(cfg: Mapping[str, Any]) -> list[str]:
    corpora = cfg.get("tagging", {}).get("corpora", {})
    return sorted({c["export"] for c in corpora.values() if c["format"] == "label_studio"})
