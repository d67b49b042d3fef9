"""dvc.yaml from the Snakemake DAG: DVC's view of exactly the same stages.

Each Snakemake job of the default configuration (params.yaml) becomes one DVC stage with
the same command, deps, params and outs, so `dvc repro` and `snakemake` agree, and
`dvc commit` after a Snakemake run leaves `dvc status` clean. `--check` (used by the
tests) fails when the committed dvc.yaml has drifted from the Snakefile.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline import workflow

HEADER = ("# Generated from the Snakefile by `python -m pipeline dvc-yaml`; do not edit.\n"
          "# Stage <rule>--<wildcards>: the Snakemake job's command, deps, params and outs.\n")

STAGE_OF_RULE = {
    "export": "export", "fetch": "fetch", "prepare_clustering": "prepare_clustering",
    "prepare_tagging": "prepare_tagging", "pretrain_autoencoder": "pretrain",
    "train_clustering": "train_clustering", "evaluate_clustering": "evaluate_clustering",
    "train_tagger": "train_tagger", "evaluate_tagger": "evaluate_tagger", "report": "report",
}


def snakemake_jobs(snakefile: str = "Snakefile", overlays: list[str] = ()) -> list[Any]:
    """Every job of the full DAG (as if nothing were done yet), via Snakemake's API;
    ``overlays`` as ``--configfile`` would give them."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
    )

    # The Snakefile exports its settings to the environment of the jobs it starts
    # (numeric mode, an overlay's resolved params); reading the DAG must leave ours as it was.
    saved = dict(os.environ)
    try:
        with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
            workflow_api = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=[Path(o) for o in overlays]),
                snakefile=Path(snakefile),
            )
            dag_api = workflow_api.dag(DAGSettings(forceall=True))
            wf = dag_api.workflow_api._workflow
            wf._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            wf._build_dag()
            return [job for job in wf.dag.jobs if job.rule.name != "all"]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def stage_name(job: Any) -> str:
    wildcards = dict(job.wildcards_dict)
    return "--".join([job.rule.name, *(str(wildcards[k]) for k in sorted(wildcards))])


def stages(cfg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for job in sorted(snakemake_jobs(), key=stage_name):
        wildcards = {k: v for k, v in job.wildcards_dict.items()}
        stage = STAGE_OF_RULE[job.rule.name]
        cmd = job.shellcmd.strip() if job.shellcmd else ""
        keys = workflow.param_keys(stage, cfg, **wildcards)
        out[stage_name(job)] = {
            "cmd": cmd,
            "deps": sorted(set(map(str, job.input))),
            "params": sorted(keys),
            "outs": sorted(map(str, job.output)),
        }
        if stage == "export" and workflow.from_server(cfg, wildcards["name"]):
            # a server's project changes without any file or param changing here
            out[stage_name(job)]["always_changed"] = True
    return {"stages": out}


def render(cfg: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(stages(cfg), sort_keys=True, width=100)


def main(check: bool = False, path: str = "dvc.yaml") -> int:
    from pipeline import config

    text = render(config.load(config.PARAMS_FILE))
    current = Path(path).read_text() if Path(path).exists() else ""
    if check:
        if current != text:
            print(f"{path} differs from the Snakefile's DAG: run `python -m pipeline dvc-yaml`",
                  file=sys.stderr)
            return 1
        return 0
    if current != text:
        from pipeline.io import write_text

        write_text(path, text)
    return 0


def complete_stages(dvc_yaml: str = "dvc.yaml") -> tuple[list[str], int]:
    """Stages of dvc.yaml whose deps and outs all exist, and how many stages there are."""
    declared = yaml.safe_load(Path(dvc_yaml).read_text())["stages"]
    done = [name for name, stage in declared.items()
            if all(Path(p).exists() for p in [*stage.get("deps", []), *stage.get("outs", [])])]
    return done, len(declared)


def commit() -> int:
    """``dvc commit`` of every complete stage: after a partial run (one seed's targets, say),
    exactly the stages that have their outputs. ``--no-relink`` copies outputs into the cache
    and leaves the files and their timestamps alone: relinked, two outputs with equal bytes
    became one file with the older one's timestamp, and a job whose input was newer looked
    stale to Snakemake."""
    import subprocess

    done, total = complete_stages()
    if not done:
        print("dvc: committed nothing (no stage of dvc.yaml has all its outputs)",
              file=sys.stderr)
        return 0
    subprocess.run(["dvc", "commit", "--force", "--quiet", "--no-relink", *done], check=True)
    if len(done) < total:
        print(f"dvc: committed the {len(done)} of {total} stages whose outputs exist; "
              "dvc.lock says nothing of the others yet", file=sys.stderr)
    return 0

