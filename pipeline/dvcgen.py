"""dvc.yaml from the Snakemake DAG: DVC's view of exactly the same stages.

Each Snakemake job of the default configuration (params.yaml) becomes one DVC stage with
the same command, deps, params and outs, so `dvc repro` and `snakemake` agree, and
`dvc commit` after a Snakemake run leaves `dvc status` clean. `--check` (used by the
tests) fails when the committed dvc.yaml has drifted from the Snakefile.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline import workflow

HEADER = ("# Generated from the Snakefile by `python -m pipeline dvc-yaml`; do not edit.\n"
          "# One stage per rule, over a matrix of its wildcards (DVC's templating): stage\n"
          "# <rule>@<values> is the Snakemake job with those wildcards (e.g.\n"
          "# train_tagger@uner_ewt_dev-bilstm_cnn_crf-0), with the same command, deps, params\n"
          "# and outs. A rule whose jobs differ in more than their wildcards gets one stage per\n"
          "# form, named after the wildcard values that set it apart.\n")

STAGE_OF_RULE = {  # in the Snakefile's order, which dvc.yaml follows
    "export": "export", "fetch": "fetch", "prepare_clustering": "prepare_clustering",
    "prepare_tagging": "prepare_tagging", "pretrain_autoencoder": "pretrain",
    "train_clustering": "train_clustering", "evaluate_clustering": "evaluate_clustering",
    "train_tagger": "train_tagger", "evaluate_tagger": "evaluate_tagger",
    "al_round": "al_round", "al_successor": "al_successor", "report": "report",
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


def job_stage(job: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """DVC's view of one Snakemake job: its command, deps, params and outs."""
    wildcards = dict(job.wildcards_dict)
    stage = STAGE_OF_RULE[job.rule.name]
    out: dict[str, Any] = {
        "cmd": job.shellcmd.strip() if job.shellcmd else "",
        "deps": sorted(set(map(str, job.input))),
        "params": sorted(workflow.param_keys(stage, cfg, **wildcards)),
        "outs": sorted(map(str, job.output)),
    }
    if stage == "export" and workflow.from_server(cfg, wildcards["name"]):
        out["always_changed"] = True  # a server's project changes without any file here
    return out


def _on_strings(value: Any, change: Any) -> Any:
    """``value`` (a stage's dict, its lists) with ``change`` applied to every string in it."""
    if isinstance(value, dict):
        return {k: _on_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_on_strings(v, change) for v in value]
    return change(value) if isinstance(value, str) else value


def _templated(value: Any, wildcards: dict[str, str]) -> Any:
    """``value`` with each wildcard's value written as ``${item.<wildcard>}`` where it stands
    alone: a path part, a word of the command, the last part of a param key, a log file's
    name, or the number after "seed" (longest values first, so that "ae_kmeans" is not read
    as "kmeans")."""
    def change(text: str) -> str:
        for name, wildcard in sorted(wildcards.items(), key=lambda kv: -len(kv[1])):
            text = re.sub(rf"(?:(?<=[/ .])|(?<=seed)|^){re.escape(wildcard)}"
                          r"(?=[/ ]|$|\.(?:[\w.]*\.)?log\b)", f"${{item.{name}}}", text)
        return text

    return _on_strings(value, change)


def _expanded(value: Any, item: dict[str, str]) -> Any:
    def change(text: str) -> str:
        for name, wildcard in item.items():
            text = text.replace(f"${{item.{name}}}", wildcard)
        return text

    return _on_strings(value, change)


def _matrix_value(text: str) -> Any:
    return int(text) if text.isdigit() else text


def stages(cfg: dict[str, Any], jobs: list[Any] | None = None
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """dvc.yaml's stages, and the Snakemake job behind each stage name DVC will expand.

    A rule's jobs that differ only in their wildcards share one template; its items are a
    ``matrix`` when they are every combination of the wildcards' values, else a ``foreach``
    keyed the way DVC names matrix stages (values joined by "-"), so that the name of a job's
    stage does not depend on which of the two it is.
    """
    jobs = snakemake_jobs() if jobs is None else jobs
    forms: dict[tuple[str, str], list[Any]] = {}
    declared: dict[Any, dict[str, Any]] = {}
    for job in sorted(jobs, key=lambda j: (list(STAGE_OF_RULE).index(j.rule.name),
                                           sorted(j.wildcards_dict.items()))):
        wildcards = {k: str(v) for k, v in sorted(job.wildcards_dict.items())}
        declared[job] = job_stage(job, cfg)
        template = _templated(declared[job], wildcards)
        forms.setdefault((job.rule.name, json.dumps(template, sort_keys=True)), []).append(job)
    out: dict[str, Any] = {}
    names: dict[str, Any] = {}
    for (rule, template_json), members in forms.items():
        template = json.loads(template_json)
        key = _stage_key(rule, members, [m for (r, _), m in forms.items() if r == rule], out)
        items = [{k: str(v) for k, v in sorted(m.wildcards_dict.items())} for m in members]
        for job, item in zip(members, items, strict=True):
            if _expanded(template, item) != declared[job]:
                raise RuntimeError(f"dvc.yaml: job {rule} {item} does not fit its template")
            names["@".join([key, "-".join(item.values())]) if item else key] = job
        if not items[0]:
            out[key] = template
            continue
        values = {k: list(dict.fromkeys(i[k] for i in items)) for k in items[0]}
        if len(items) == math.prod(map(len, values.values())):
            head = {"matrix": {k: [_matrix_value(v) for v in vs] for k, vs in values.items()}}
        else:
            head = {"foreach": {"-".join(i.values()): {k: _matrix_value(v)
                                                       for k, v in i.items()} for i in items}}
        out[key] = {**head, **template} if "matrix" in head else {**head, "do": template}
    return {"stages": out}, names


def _stage_key(rule: str, members: list[Any], forms: list[list[Any]],
               taken: dict[str, Any]) -> str:
    """The rule's name; when a rule has several forms, each after the wildcard values that
    set it apart (train_clustering_kmeans beside train_clustering), else numbered."""
    key = rule
    if len(forms) > 1:
        own = {k: {str(m.wildcards_dict[k]) for m in members} for k in members[0].wildcards_dict}
        others = {str(m.wildcards_dict[k]) for f in forms if f is not members for m in f
                  for k in own}
        tell = [next(iter(v)) for k, v in sorted(own.items()) if len(v) == 1
                and not v & others]
        key = "_".join([rule, *tell]) if tell else rule
    n = 2
    candidate = key
    while candidate in taken:
        candidate, n = f"{key}_{n}", n + 1
    return candidate


def render(cfg: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(stages(cfg)[0], sort_keys=False, width=100)


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


def commit() -> int:
    """``dvc commit --force --no-relink`` of every complete stage (all deps and outs exist):
    after a partial run (one seed's targets, say), exactly the stages that have their
    outputs. One process, one write of dvc.lock: the ``dvc commit`` command re-reads and
    rewrites the whole lock file once per stage named, 3 minutes for the default DAG's 68.
    No relinking: relinked, two outputs with equal bytes became one file with the older
    one's timestamp, and a job whose input was newer looked stale to Snakemake."""
    import logging

    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(logging.ERROR)  # what `dvc commit --quiet` shows
    with Repo() as repo, repo.lock:
        declared = [s for s in repo.index.stages if s.relpath == "dvc.yaml"]
        done = [s for s in declared if all(Path(x.fs_path).exists()
                                           for x in [*s.deps, *s.outs]
                                           if x.def_path != "params.yaml")]
        for stage in done:
            stage.save()
            stage.commit(relink=False)
        if done:
            done[0].dvcfile.dump_stages(done, update_pipeline=False)
    if not done:
        print("dvc: committed nothing (no stage of dvc.yaml has all its outputs)",
              file=sys.stderr)
    elif len(done) < len(declared):
        print(f"dvc: committed the {len(done)} of {len(declared)} stages whose outputs exist; "
              "dvc.lock says nothing of the others yet", file=sys.stderr)
    return 0


def pull(remote: str | None = None) -> int:
    """``dvc pull``, then tell Snakemake the pulled outputs are up to date. Pulled files get
    the time of the pull, in no particular order, so Snakemake would see inputs newer than
    outputs and redo the DAG; once DVC confirms every stage matches dvc.lock (code, params,
    data), ``snakemake --touch`` dates them in DAG order. A stage that does not match is
    left alone, and named."""
    import subprocess

    subprocess.run(["dvc", "pull", "--quiet", *(["--remote", remote] if remote else [])],
                   check=True)
    status = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True,
                            check=True)
    stale = json.loads(status.stdout or "{}")
    if stale:
        raise ValueError(f"dvc.lock: {len(stale)} stage(s) do not match this checkout after "
                         f"the pull ({', '.join(sorted(stale)[:5])}); nothing touched, "
                         "`snakemake` redoes them")
    subprocess.run(["snakemake", "--touch", "--cores", "1", "--quiet", "all"], check=True)
    return 0
