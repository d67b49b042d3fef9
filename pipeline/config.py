"""params.yaml: the one configuration file.

The Snakefile reads params.yaml as its configfile, so ``--config`` and ``--configfile``
overlays deep-merge into it; a key set to ``null`` in an overlay removes it (this is
how an overlay drops the default datasets). When the merged configuration differs
from params.yaml, the Snakefile writes it under ``.pipeline/`` and points jobs at it
through ``PIPELINE_PARAMS``; DVC always reads params.yaml itself.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import best_match

from pipeline.errors import one_line

PARAMS_FILE = "params.yaml"
ENV_VAR = "PIPELINE_PARAMS"

CLUSTERING_FORMATS = {"sklearn_digits": (), "idx": ("images", "labels"), "npz": ("path",)}


class ConfigError(ValueError):
    """A params file that cannot drive the pipeline; the message names file and key."""


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping; an unreadable file or bad YAML is a ConfigError naming the place."""
    try:
        data = yaml.safe_load(Path(path).read_bytes())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {e.problem or e.context}") from e
    except yaml.reader.ReaderError as e:  # bytes that are not text
        what = (f"not valid YAML: character #x{e.character:04x} at {e.position} ({e.reason})"
                if e.encoding == "unicode" else  # PyYAML's mark of a non-printable character
                f"not {e.encoding} text: byte {e.position} ({e.reason})")
        raise ConfigError(f"{path}: {what}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {one_line(str(e))}") from e
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


def yaml_scalars(node: Any) -> Any:
    """``--config`` values as params.yaml would read them: Snakemake parses a list or
    mapping given there with YAML's BaseLoader, so ``seeds='[0,1]'`` arrives as
    ``['0', '1']``; each string is read again as a YAML scalar (``'0'`` -> 0)."""
    if isinstance(node, Mapping):
        return {key: yaml_scalars(value) for key, value in node.items()}
    if isinstance(node, list):
        return [yaml_scalars(value) for value in node]
    if isinstance(node, str):
        try:
            value = yaml.safe_load(node)
        except yaml.YAMLError:
            return node
        return value if value is None or isinstance(value, bool | int | float | str) else node
    return node


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
    path = source(path)
    cfg = read_yaml(path)
    for overlay in overlays:
        cfg = deep_merge(cfg, read_yaml(overlay))
    cfg = drop_nulls(cfg)
    validate(cfg, " + ".join([path, *map(str, overlays)]))
    return cfg


def source(path: str | os.PathLike | None = None) -> str:
    """The params file a job reads: ``path``, else PIPELINE_PARAMS, else params.yaml."""
    return str(path or os.environ.get(ENV_VAR) or PARAMS_FILE)


def entry(cfg: Mapping[str, Any], collection: str, name: str) -> Any:
    """The entry ``name`` of a named collection (``clustering.datasets``); a name given on
    the command line that is not there is a ConfigError with a did-you-mean."""
    entries = get(cfg, collection)
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"it has {sorted(entries)}"
        raise ConfigError(f"{source()}: {collection} has no {name!r}; {hint}")
    return entries[name]


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


SCHEMA_FILE = Path(__file__).with_name("params.schema.yaml")


@cache
def _validator() -> Any:
    """Draft 2020-12, except that an integer is an int: JSON Schema counts 2.0 as one, and
    ``seeds: [1.0]`` or ``threads: 2.0`` would pass, then fail in a path or in torch."""
    from jsonschema import Draft202012Validator, validators

    schema = read_yaml(SCHEMA_FILE)
    Draft202012Validator.check_schema(schema)
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return validators.extend(Draft202012Validator, type_checker=checker)(schema)


def seed_range() -> tuple[int, int]:
    """The seeds the schema allows: what NumPy, torch and scikit-learn all accept."""
    seed = _validator().schema["$defs"]["seed"]
    return seed["minimum"], seed["maximum"]


INT64 = 2**63 - 1


def _plain_values(node: Any, path: str = "") -> str | None:
    """What no schema keyword says: keys are strings (YAML reads ``on:`` as True), numbers
    are finite (``.inf`` passes every minimum) and fit NumPy's and torch's 64-bit integers."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                return f"{path or 'top level'}: key {key!r} is not a string (quote it)"
            problem = _plain_values(value, f"{path}.{key}" if path else key)
            if problem:
                return problem
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problem = _plain_values(value, f"{path}.{i}")
            if problem:
                return problem
    elif isinstance(node, float) and not math.isfinite(node):
        return f"{path}: {node} is not a finite number"
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > INT64:
        return f"{path}: {node} does not fit a 64-bit integer"
    return None


def _known_keys(schema: Mapping[str, Any]) -> set[str]:
    """The property names a schema node declares, through $ref and allOf."""
    keys = set(schema.get("properties", {}))
    if "$ref" in schema:
        keys |= _known_keys(_validator().schema["$defs"][schema["$ref"].rsplit("/", 1)[1]])
    for part in schema.get("allOf", []):
        keys |= _known_keys(part)
    return keys


def _schema_error(error: Any) -> str:
    """'dotted.key: problem', with a did-you-mean for an unknown key."""
    path = [str(p) for p in error.absolute_path]
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        known = _known_keys(error.schema)
        unknown = sorted(set(error.instance) - known)
        if unknown and known:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {sorted(known)}"
            return f"{'.'.join([*path, unknown[0]])}: unknown key; {hint}"
    if error.validator == "pattern" and "description" in error.schema:
        return f"{'.'.join(path)}: {error.instance!r}: {error.schema['description']}"
    return f"{'.'.join(path) or 'top level'}: {error.message}"


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {message}")


def validate(cfg: Mapping[str, Any], source: str) -> None:
    """Plain values first (string keys, finite numbers), the schema (types, ranges, enums,
    required and unknown keys), then what a schema cannot say: which files a format needs,
    and names that must refer to declared blocks."""
    problem = _plain_values(cfg)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    errors = list(_validator().iter_errors(cfg))
    # A bad value inside an allOf also leaves its keys "unevaluated": name the value.
    error = best_match([e for e in errors if e.validator != "unevaluatedProperties"] or errors)
    if error is not None:
        raise ConfigError(f"{source}: {_schema_error(error)}")
    clustering = cfg["clustering"]
    for name, entry in clustering["datasets"].items():
        fmt = entry["format"]
        for key in CLUSTERING_FORMATS[fmt]:
            _require(key in entry, f"{source}: clustering.datasets.{name}",
                     f"format {fmt} needs {key}: a path or {{url:, sha256:}}")
    for model in clustering["models"]:
        _require(model in clustering["methods"], f"{source}: clustering.models",
                 f"{model!r} has no block under clustering.methods")
    exports = cfg.get("annotation", {}).get("exports", {})
    for name, entry in exports.items():
        _require(entry["source"] != "server" or entry["url"],
                 f"{source}: annotation.exports.{name}",
                 "source: server needs url: the Label Studio address")
    tagging = cfg["tagging"]
    for name, entry in tagging["corpora"].items():
        where = f"{source}: tagging.corpora.{name}"
        fmt = entry["format"]
        if fmt == "label_studio":
            _require(entry.get("export") in exports, where,
                     f"export: must name an entry of annotation.exports {sorted(exports)}")
        else:
            _require("train" in entry, where, "needs train: a path or {url:, sha256:}")
        if fmt == "conllu":
            _require("column" in entry, where, "format conllu needs column: upos or xpos")
    for model in tagging["models"]:
        _require(model in tagging["variants"], f"{source}: tagging.models",
                 f"{model!r} has no block under tagging.variants")
    for name in tagging["models"]:
        base = tagging["variants"][name].get("transfer")
        if not base:
            continue
        where = f"{source}: tagging.variants.{name}.transfer"
        _require(tagging.get("transfer_corpus") in tagging["corpora"], where,
                 "needs tagging.transfer_corpus: a corpus of tagging.corpora to start from")
        _require(base in tagging["variants"] and not tagging["variants"][base].get("transfer"),
                 where, f"{base!r} must name a variant without transfer")
    if "active_learning" in cfg:
        _validate_simulation(cfg["active_learning"]["simulation"], tagging, source)


def _validate_simulation(sim: Mapping[str, Any], tagging: Mapping[str, Any], source: str) -> None:
    """Names the active-learning simulation refers to, and its rounds' budgets."""
    where = f"{source}: active_learning.simulation"
    fractions = sim["fractions"]
    _require(all(a < b for a, b in zip(fractions[:-1], fractions[1:], strict=True)),
             f"{where}.fractions",
             f"must increase (labelled tokens after each round), got {fractions}")
    for corpus in sim["corpora"]:
        _require(corpus in tagging["corpora"], f"{where}.corpora",
                 f"{corpus!r} is not a corpus of tagging.corpora {sorted(tagging['corpora'])}")
    successor = sim["successor"] or {}
    for label, variant in [("tagger", sim["tagger"]),
                           *([("successor.tagger", successor["tagger"])] if successor else [])]:
        _require(not sim["corpora"] or variant in tagging["variants"], f"{where}.{label}",
                 f"{variant!r} has no block under tagging.variants")
    if successor:
        _require(successor["strategy"] in sim["strategies"] and "random" in sim["strategies"],
                 f"{where}.successor", f"compares {successor['strategy']!r} with random: "
                 "both must be in strategies")
        _require(max(successor["rounds"]) < len(fractions), f"{where}.successor.rounds",
                 f"rounds count from 1 (0 is the shared seed set) to {len(fractions) - 1}")


def write_resolved(cfg: Mapping[str, Any], directory: str | os.PathLike = ".pipeline") -> Path:
    """Write a merged configuration once, named by its content, for jobs to read."""
    from pipeline.io import write_text

    path = Path(directory) / f"params-{digest(cfg)[:12]}.yaml"
    if not path.exists():
        write_text(path, yaml.safe_dump(dict(cfg), sort_keys=True))
    return path
