"""Snapshot files: a Label Studio JSON export on disk, written atomically with its sha256."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from annotation.convert import BadTask, ConversionReport, tasks_to_sentences
from pipeline.data.sentences import Sentence
from pipeline.io import BadInput, sha256_file, write_text


def dumps_export(tasks: list[Any]) -> str:
    """A JSON list with one task per line: valid JSON, stable bytes, readable diffs."""
    lines = [json.dumps(task, sort_keys=True, ensure_ascii=False) for task in tasks]
    return "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"


def write_snapshot(path: str | os.PathLike, tasks: list[Any]) -> str:
    """Write ``tasks`` and ``<path>.sha256`` (sha256sum format); return the digest.

    Each file is replaced atomically, the snapshot first: a failure leaves the old pair or
    a new snapshot whose sidecar ``check_snapshot`` reports as stale.
    """
    path = Path(path)
    write_text(path, dumps_export(tasks))
    digest = sha256_file(path)
    write_text(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n")
    return digest


def read_snapshot(path: str | os.PathLike) -> list[Any]:
    """Load an export; bad bytes or bad JSON raise BadInput naming the file and place."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 at byte {exc.start}: {exc.reason}") from exc
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: bad JSON at line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg}") from exc
    if not isinstance(tasks, list):
        raise BadInput(f"{path}: a Label Studio JSON export is a list of tasks, "
                         f"got {type(tasks).__name__}")
    return tasks


def convert_snapshot(path: str | os.PathLike, labels: Sequence[str], policy: Mapping[str, Any]
                     ) -> tuple[list[Sentence], ConversionReport]:
    """``read_snapshot`` + ``tasks_to_sentences``; every error names the file."""
    try:
        return tasks_to_sentences(read_snapshot(path), labels, policy)
    except BadTask as exc:
        raise BadInput(f"{path}: {exc}") from exc
