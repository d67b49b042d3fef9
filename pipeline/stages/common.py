"""What every stage does the same way: load config, pick device, record its run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline import config
from pipeline.io import write_json


def load_config() -> dict[str, Any]:
    return config.load()


def mark_done(out_dir: str | Path, run_id: str, **extra: Any) -> None:
    """Write run.json last: a job that dies earlier leaves no sign of being finished."""
    write_json(Path(out_dir) / "run.json", {"run_id": run_id, **extra})


def read_run_id(out_dir: str | Path) -> str:
    return json.loads((Path(out_dir) / "run.json").read_text())["run_id"]


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
