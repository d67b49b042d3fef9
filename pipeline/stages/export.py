"""Export stage: Label Studio (when a server is configured) or the committed snapshot
-> data/annotations/<name>.json, the DVC-tracked input of everything downstream."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline import workflow
from pipeline.io import BadInput, write_bytes
from pipeline.stages.common import load_config


def run(name: str) -> None:
    cfg = load_config()
    entry = cfg["annotation"]["exports"][name]
    out = Path(workflow.path("export", name=name))
    url = os.environ.get("LABEL_STUDIO_URL")
    if url:
        from annotation.client import export_project

        export_project(url=url, api_key=os.environ.get("LABEL_STUDIO_API_KEY", ""),
                       project_title=entry["project"], out_path=out,
                       server_settings=cfg["annotation"]["server"])
        return
    snapshot = Path(entry["snapshot"])
    data = snapshot.read_bytes()
    try:
        tasks = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{snapshot}: not a Label Studio JSON export: {e}") from e
    if not isinstance(tasks, list):
        raise BadInput(f"{snapshot}: a Label Studio JSON export is a list of tasks, "
                         f"got {type(tasks).__name__}")
    write_bytes(out, data)
