"""``python -m pipeline replicate <run-id>``: re-run one recorded job and say whether it
came out the same.

Checks, in order: the code at hand is the recorded commit (refuses otherwise, unless
``--allow-code-mismatch``); the current params.yaml still gives the recorded parameters;
the input files still have the recorded hashes (sha256 and DVC's md5). Then it re-runs the
job's recorded command with the recorded configuration and seed in a scratch directory
(copies of its inputs, a scratch MLflow store) and compares the final metrics and the
sha256 of every artifact (weights, predictions, metrics, history). Exit 0 and
"replicated" when all match; 1 and a list of every mismatch otherwise; 2 when it refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import config, numerics, workflow
from pipeline.io import BadInput
from pipeline.seeding import fingerprint, select_device
from pipeline.tracking import changed_code_files, file_hashes, git_state, tracking_uri

# Artifacts that must come back bit-identical; figures are compared but only reported.
INFORMATIONAL = ("figures/",)
# Wall-clock measurements (e.g. epoch_seconds) differ on every run: reported, not compared.
TIMING = "_seconds"


@dataclass
class Outcome:
    run_id: str
    job: str = ""
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: bool = False

    @property
    def replicated(self) -> bool:
        return not self.mismatches and not self.refused

    def render(self) -> str:
        head = ("replicated" if self.replicated else
                "REFUSED" if self.refused else "NOT replicated")
        lines = [f"{self.run_id} ({self.job}): {head}"]
        lines += [f"  mismatch: {m}" for m in self.mismatches]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _client(uri: str):
    """A client whose artifact downloads draw no progress bars: replicate's answer is its
    verdicts, and MLflow draws one per download between them."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(uri)


def _artifact_hashes(client: Any, run_id: str) -> dict[str, str]:
    """sha256 of every artifact of a run, by artifact path (history without timings)."""
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(run_id, "", tmp))
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if path.name == "history.json":
                history = {k: v for k, v in json.loads(data).items() if not k.endswith(TIMING)}
                data = json.dumps(history, sort_keys=True).encode()
            out[str(path.relative_to(local))] = hashlib.sha256(data).hexdigest()
    return out


def check_code(tags: dict[str, str]) -> list[str]:
    recorded = tags.get("mlflow.source.git.commit", "unknown")
    now = git_state()
    problems = []
    if recorded != now["mlflow.source.git.commit"]:
        problems.append(f"code differs: run was made at commit {recorded}, "
                        f"this checkout is {now['mlflow.source.git.commit']}")
    if now["git.dirty"] == "True":
        problems.append("code differs: the working tree has uncommitted changes "
                        f"({', '.join(changed_code_files())})")
    if tags.get("git.dirty") == "True":
        problems.append("the run itself was made from a working tree with uncommitted changes")
    return problems


def check_params(run: Any, recorded_cfg: dict[str, Any]) -> list[str]:
    """Does today's params.yaml still give this job the parameters it ran with?"""
    tags = run.data.tags
    stage = tags["stage"]
    wildcards = {k: tags[k] for k in ("dataset", "corpus", "model", "name") if k in tags}
    try:
        current = workflow.param_values(stage, config.load(), **wildcards)
    except (KeyError, config.ConfigError) as e:
        return [f"parameter changed: params.yaml no longer configures this job ({e})"]
    recorded = {k: v for k, v in run.data.params.items() if k != "seed"}
    problems = []
    for key in sorted(set(recorded) | set(current)):
        if recorded.get(key) != current.get(key):
            problems.append(f"parameter changed: {key} was {recorded.get(key)!r}, "
                            f"params.yaml now gives {current.get(key)!r}")
    if recorded_cfg.get("seeds") and int(tags["seed"]) not in config.load()["seeds"]:
        problems.append(f"parameter changed: seed {tags['seed']} is no longer in seeds")
    return problems


def check_inputs(tags: dict[str, str]) -> list[str]:
    problems = []
    for key, digest in sorted(tags.items()):
        if not (key.startswith("input.") and key.endswith(".sha256")):
            continue
        path = key[len("input."):-len(".sha256")]
        if not Path(path).exists():
            problems.append(f"input data changed: {path} is missing (try `dvc checkout`)")
        elif file_hashes(path)["sha256"] != digest:
            problems.append(f"input data changed: {path} has sha256 "
                            f"{file_hashes(path)['sha256']}, the run read {digest} "
                            f"(DVC md5 {tags.get(f'input.{path}.md5')}; `dvc checkout` "
                            "restores a committed version)")
    return problems


def rerun_env(environ: dict[str, str], tags: dict[str, str]) -> dict[str, str]:
    """The re-run's environment: this one without the numeric settings of this process's
    mode, with those the run recorded instead (its job then applies its recorded mode)."""
    managed = {numerics.MODE_VAR, numerics.OVERRIDDEN_VAR, *numerics.REMOVED,
               *numerics.THREAD_VARS, *(k for s in numerics.PORTABLE.values() for k in s)}
    env = {k: v for k, v in environ.items() if k not in managed and k != config.ENV_VAR}
    prefix = "numerics.env."
    env.update({k[len(prefix):]: v for k, v in tags.items()
                if k.startswith(prefix) and v != "unset" and k[len(prefix):] in managed})
    return env


def rerun(run: Any, recorded_cfg: dict[str, Any], scratch: Path) -> tuple[str, str]:
    """Re-run the job in ``scratch``; return its MLflow store URI and run id."""
    tags = run.data.tags
    for key in tags:
        if key.startswith("input.") and key.endswith(".sha256"):
            src = Path(key[len("input."):-len(".sha256")]).parent
            shutil.copytree(src, scratch / src, dirs_exist_ok=True)
    # Runs from before numeric modes were recorded ran with the libraries' own choice.
    recorded_cfg = {"numerics": "native", **recorded_cfg}
    (scratch / config.PARAMS_FILE).write_text(json.dumps(recorded_cfg))  # JSON is YAML
    uri = f"sqlite:///{scratch}/mlflow.db"
    env = rerun_env(dict(os.environ), tags)
    env.update(MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(Path.cwd()), CI="true")
    argv = shlex.split(tags["command"])[3:]  # after "python -m pipeline" (written by shlex.join)
    proc = subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=scratch, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"re-run of `{tags['command']}` failed:\n{proc.stderr[-2000:]}")
    client = _client(uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    (new,) = client.search_runs(exps, f"tags.job = '{tags['job']}'")
    return uri, new.info.run_id


def replicate(run_id: str, allow_code_mismatch: bool = False, keep: bool = False) -> Outcome:
    client = _client(tracking_uri())
    run = client.get_run(run_id)
    tags = run.data.tags
    outcome = Outcome(run_id, tags.get("job", "?"))
    with tempfile.TemporaryDirectory() as tmp:
        recorded_cfg = json.loads(Path(client.download_artifacts(
            run_id, "config/resolved.json", tmp)).read_text())

    code = check_code(tags)
    if code and not allow_code_mismatch:
        outcome.mismatches += code
        outcome.refused = True
        return outcome
    outcome.mismatches += code
    outcome.mismatches += check_params(run, recorded_cfg)
    outcome.mismatches += check_inputs(tags)

    now = fingerprint(select_device(recorded_cfg.get("device", "auto")))
    env_diff = [f"{k}: run {tags.get('env.' + k)!r}, here {v!r}" for k, v in now.items()
                if tags.get(f"env.{k}") != v]
    if env_diff:
        outcome.notes.append("environment differs (bit-identity is promised only on the same "
                             "hardware and software): " + "; ".join(env_diff))

    scratch = Path(tempfile.mkdtemp(prefix=f"replicate-{run_id[:8]}-"))
    try:
        uri, new_id = rerun(run, recorded_cfg, scratch)
        new = _client(uri).get_run(new_id)
        for key in sorted(set(run.data.metrics) | set(new.data.metrics)):
            a, b = run.data.metrics.get(key), new.data.metrics.get(key)
            if a != b and not key.endswith(TIMING):
                outcome.mismatches.append(f"metric {key}: recorded {a}, re-run {b}")
        old_files = _artifact_hashes(client, run_id)
        new_files = _artifact_hashes(_client(uri), new_id)
        for path in sorted(set(old_files) | set(new_files)):
            if old_files.get(path) == new_files.get(path):
                continue
            message = (f"artifact {path}: sha256 {old_files.get(path, 'absent')} recorded, "
                       f"{new_files.get(path, 'absent')} re-run")
            if path.startswith(INFORMATIONAL):
                outcome.notes.append(message)
            else:
                outcome.mismatches.append(message)
        outcome.notes.append(f"compared {len(old_files)} artifacts and "
                             f"{len(run.data.metrics)} metrics")
        causes = numerics.explain(tags, new.data.tags)
        if outcome.mismatches and causes:
            outcome.notes.append("what differs between the run and the re-run: "
                                 + "; ".join(causes))
    except RuntimeError as e:
        outcome.mismatches.append(str(e))
    finally:
        if keep:
            outcome.notes.append(f"scratch directory kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return outcome


def runs_behind_report(cfg: dict[str, Any]) -> list[str]:
    """Every run a number in reports/results.md comes from: evaluation, training, pretraining."""
    ids: list[str] = []
    results = [workflow.path("clustering_result", dataset=d, model=m, seed=s)
               for d in cfg.get("clustering", {}).get("datasets", {})
               for m in cfg["clustering"]["models"] for s in cfg["seeds"]]
    results += [workflow.path("tagging_result", corpus=c, model=m, seed=s)
                for c in cfg.get("tagging", {}).get("corpora", {})
                for m in workflow.tagging_models(cfg, c) for s in cfg["seeds"]]
    for result in results:
        run = json.loads(Path(result, "run.json").read_text())
        ids += [run["train_run_id"], run["run_id"]]
    for d in cfg.get("clustering", {}).get("datasets", {}):
        for s in cfg["seeds"]:
            ae = Path(workflow.path("autoencoder", dataset=d, seed=s), "run.json")
            if ae.exists():
                ids.append(json.loads(ae.read_text())["run_id"])
    return list(dict.fromkeys(ids))


def check_replicable(run_ids: list[str]) -> None:
    """Every run id names a job run of the store, before the first of them is re-run: a
    wrong id is an MlflowException naming it, a run no stage made a BadInput."""
    client = _client(tracking_uri())
    for run_id in run_ids:
        tags = client.get_run(run_id).data.tags
        missing = [t for t in ("command", "job", "stage") if t not in tags]
        if missing:
            raise BadInput(f"run {run_id} in {tracking_uri()}: not a pipeline job's run "
                           f"(no {', '.join(missing)} tag): nothing to re-run")


def main(run_ids: list[str], all_runs: bool, allow_code_mismatch: bool, keep: bool) -> int:
    if all_runs:
        run_ids = runs_behind_report(config.load())
    if not run_ids:
        print("nothing to replicate: give run ids or --all", file=sys.stderr)
        return 2
    check_replicable(run_ids)
    outcomes = [replicate(r, allow_code_mismatch, keep) for r in run_ids]
    for o in outcomes:
        print(o.render())
    ok = sum(o.replicated for o in outcomes)
    print(f"{ok} of {len(outcomes)} runs replicated")
    if any(o.refused for o in outcomes):
        return 2
    return 0 if ok == len(outcomes) else 1
