"""Export stage: the Label Studio project (``source: server``) or the committed snapshot
(``source: snapshot``) -> data/annotations/<name>.json, the DVC-tracked input of everything
downstream. The source is a parameter, so a change of source reruns the stage; the MLflow
run records the source, the task count and the sha256 of what was written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline import workflow
from pipeline.io import BadInput, sha256_file, write_bytes
from pipeline.stages.common import load_config
from pipeline.tracking import job_run


def run(name: str) -> None:
    cfg = load_config()
    entry = cfg["annotation"]["exports"][name]
    out = Path(workflow.path("export", name=name))
    params = workflow.param_values("export", cfg, name=name)
    server = entry["source"] == "server"
    inputs = [] if server else [entry["snapshot"]]
    where = f"{entry['url']} project {entry['project']!r}" if server else entry["snapshot"]
    with job_run("annotation", f"export/{name}", "export", params, None, inputs, cfg, "cpu",
                 {"export.source": entry["source"], "export.from": where}) as run:
        if server:
            from annotation.client import export_project

            tasks = export_project(url=entry["url"],
                                   api_key=os.environ.get("LABEL_STUDIO_API_KEY", ""),
                                   project_title=entry["project"], out_path=out,
                                   server_settings=cfg["annotation"]["server"])["tasks"]
        else:
            tasks = len(_read_snapshot(Path(entry["snapshot"])))
            write_bytes(out, Path(entry["snapshot"]).read_bytes())
        run.log_metrics({"tasks": tasks})
        run.set_tags({"export.sha256": sha256_file(out)})


def _read_snapshot(snapshot: Path) -> list:
    try:
        tasks = json.loads(snapshot.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{snapshot}: not a Label Studio JSON export: {e}") from e
    if not isinstance(tasks, list):
        raise BadInput(f"{snapshot}: a Label Studio JSON export is a list of tasks, "
                       f"got {type(tasks).__name__}")
    return tasks
