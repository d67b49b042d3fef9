"""params.yaml: the one configuration file.

The Snakefile reads params.yaml as its configfile, so ``--config`` and ``--configfile``
overlays deep-merge into it; a key set to ``null`` in an overlay removes it (this is
how an overlay drops the default datasets). When the merged configuration differs
from params.yaml, the Snakefile writes it under ``.pipeline/`` and points jobs at it
through ``PIPELINE_PARAMS``; DVC always reads params.yaml itself.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = "params.yaml"
ENV_VAR = "PIPELINE_PARAMS"

CLUSTERING_FORMATS = {"sklearn_digits": (), "idx": ("images", "labels"), "npz": ("path",)}
TAGGING_FORMATS = {"label_studio", "iob2", "conllu"}


class ConfigError(ValueError):
    """A params file that cannot drive the pipeline; the message names file and key."""


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Merge like Snakemake merges configfiles: mappings recursively, the rest replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# Named collections whose entries an overlay may remove by setting them to null.
COLLECTIONS = ("clustering.datasets", "clustering.methods", "tagging.corpora",
               "tagging.variants", "annotation.exports")


def drop_nulls(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Remove collection entries set to null: an overlay's way of deleting a default entry.

    Elsewhere null is an ordinary value (e.g. ``embeddings: null``) and stays.
    """
    cfg = copy.deepcopy(dict(cfg))
    for dotted in COLLECTIONS:
        parent, _, leaf = dotted.rpartition(".")
        node = cfg.get(parent)
        if isinstance(node, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = {k: v for k, v in node[leaf].items() if v is not None}
    return cfg


def load(path: str | os.PathLike | None = None, overlays: list[str] = ()) -> dict[str, Any]:
    """Load the configuration a job runs under: PIPELINE_PARAMS, else params.yaml."""
    path = path or os.environ.get(ENV_VAR) or PARAMS_FILE
    cfg = read_yaml(path)
    for overlay in overlays:
        cfg = deep_merge(cfg, read_yaml(overlay))
    cfg = drop_nulls(cfg)
    validate(cfg, str(path))
    return cfg


def digest(cfg: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


def get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"params: missing key {dotted!r}")
        node = node[part]
    return node


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists stay whole, as JSON."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k in sorted(value):
            out.update(flatten(value[k], f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, (list, tuple)):
        return {prefix: json.dumps(value, default=str)}
    return {prefix: "null" if value is None else str(value)}


def is_file_spec(value: Any) -> bool:
    """A data file is given as a path, or as ``{url:, sha256:}`` to be fetched."""
    if isinstance(value, str):
        return True
    return isinstance(value, Mapping) and "url" in value and "sha256" in value


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {message}")


def _check_augment(spec: Any, where: str) -> None:
    """Shifts and rotations of images: {rotation: degrees, shift: fraction of the size}."""
    _require(isinstance(spec, Mapping) and set(spec) == {"rotation", "shift"}, where,
             f"must be null or {{rotation: degrees, shift: fraction}}, got {spec!r}")
    rotation, shift = spec["rotation"], spec["shift"]
    _require(isinstance(rotation, (int, float)) and 0 <= rotation <= 180, where,
             f"rotation must be 0-180 degrees, got {rotation!r}")
    _require(isinstance(shift, (int, float)) and 0 <= shift < 0.5, where,
             f"shift must be a fraction of the image size in [0, 0.5), got {shift!r}")


def validate(cfg: Mapping[str, Any], source: str) -> None:
    seeds = cfg.get("seeds")
    _require(
        isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)
        and len(set(seeds)) == len(seeds),
        f"{source}: seeds", f"must be a non-empty list of distinct integers, got {seeds!r}",
    )
    threads = cfg.get("threads")
    _require(isinstance(threads, int) and threads > 0, f"{source}: threads",
             f"must be a positive integer, got {threads!r}")
    numerics = cfg.get("numerics")
    _require(numerics in ("portable", "native"), f"{source}: numerics",
             f"must be portable or native, got {numerics!r}")
    clustering = cfg.get("clustering", {})
    for name, entry in clustering.get("datasets", {}).items():
        where = f"{source}: clustering.datasets.{name}"
        _require(isinstance(entry, Mapping), where, "must be a mapping")
        fmt = entry.get("format")
        _require(fmt in CLUSTERING_FORMATS, where,
                 f"format must be one of {sorted(CLUSTERING_FORMATS)}, got {fmt!r}")
        for key in CLUSTERING_FORMATS[fmt]:
            _require(is_file_spec(entry.get(key)), where,
                     f"format {fmt} needs {key}: a path or {{url:, sha256:}}")
    for model in clustering.get("models", []):
        _require(model in clustering.get("methods", {}), f"{source}: clustering.models",
                 f"{model!r} has no block under clustering.methods")
    blocks = {"autoencoder": clustering.get("autoencoder", {}),
              **{f"methods.{m}": hp for m, hp in clustering.get("methods", {}).items()}}
    for name, block in blocks.items():
        if isinstance(block, Mapping) and block.get("augment") is not None:
            _check_augment(block["augment"], f"{source}: clustering.{name}.augment")
    tagging = cfg.get("tagging", {})
    exports = cfg.get("annotation", {}).get("exports", {})
    for name, entry in tagging.get("corpora", {}).items():
        where = f"{source}: tagging.corpora.{name}"
        _require(isinstance(entry, Mapping), where, "must be a mapping")
        fmt = entry.get("format")
        _require(fmt in TAGGING_FORMATS, where,
                 f"format must be one of {sorted(TAGGING_FORMATS)}, got {fmt!r}")
        if fmt == "label_studio":
            _require(entry.get("export") in exports, where,
                     f"export: must name an entry of annotation.exports {sorted(exports)}")
        else:
            _require(is_file_spec(entry.get("train")), where,
                     "needs train: a path or {url:, sha256:}")
            for split in ("dev", "test"):
                _require(split not in entry or is_file_spec(entry[split]), where,
                         f"{split}: must be a path or {{url:, sha256:}}")
        if fmt == "conllu":
            _require(entry.get("column") in ("upos", "xpos"), where,
                     f"column must be upos or xpos, got {entry.get('column')!r}")
    for model in tagging.get("models", []):
        _require(model in tagging.get("variants", {}), f"{source}: tagging.models",
                 f"{model!r} has no block under tagging.variants")


def write_resolved(cfg: Mapping[str, Any], directory: str | os.PathLike = ".pipeline") -> Path:
    """Write a merged configuration once, named by its content, for jobs to read."""
    from pipeline.io import write_text

    path = Path(directory) / f"params-{digest(cfg)[:12]}.yaml"
    if not path.exists():
        write_text(path, yaml.safe_dump(dict(cfg), sort_keys=True))
    return path
