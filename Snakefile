"""The whole pipeline as one DAG: export -> prepare -> pretrain -> train -> evaluate -> report.

params.yaml is the configfile: `--config key=value` and `--configfile overlay.yaml` override
it. Rules are thin: each calls one stage of the `pipeline` package. Paths, the params each
stage depends on and its source files come from pipeline/workflow.py, which dvc.yaml is
generated from too (`python -m pipeline dvc-yaml`).
"""

import os

from pipeline import config as params
from pipeline import numerics
from pipeline import workflow as wf


configfile: "params.yaml"


# `--config` lists and mappings arrive as strings (Snakemake's YAML BaseLoader): retyped.
_typed = params.deep_merge(config, params.yaml_scalars(dict(workflow.config_settings.config)))
# An overlay sets an entry to null to drop a default one (e.g. the default datasets).
_merged = params.drop_nulls(_typed)
config.clear()
config.update(_merged)
params.validate(config, " + ".join(["params.yaml", *map(str, workflow.overwrite_configfiles)]))
numerics.export_env(config["numerics"], config["threads"])  # inherited by every job
if config != params.drop_nulls(params.read_yaml(params.PARAMS_FILE)):
    os.environ[params.ENV_VAR] = str(params.write_resolved(config))
else:
    os.environ.pop(params.ENV_VAR, None)

SEEDS = config["seeds"]
DATASETS = list(config.get("clustering", {}).get("datasets", {}))
CLUSTERING_MODELS = config.get("clustering", {}).get("models", [])
CORPORA = list(config.get("tagging", {}).get("corpora", {}))
PY = "python -m pipeline"
JOB = PY + " --log {log}"  # a stage, its output also written to the rule's log


def outputs(kind):
    """A stage's output files, as wildcard patterns; suffix-less names are directories."""
    names = {"name", "group", "key", "file", "dataset", "corpus", "model", "seed", "strategy",
             "round"}
    files = wf.files(kind, **{n: "{" + n + "}" for n in names})
    return [f if "." in os.path.basename(f) else directory(f) for f in files]


def stage_params(stage):
    return lambda w: wf.param_values(stage, config, **dict(w.items()))


def log(kind):
    """A job's log (its output as on the terminal): logs/ + the path of what it makes."""
    return f"logs/{wf.PATHS[kind]}.log"


def resources(rule):
    """What a job asks a cluster's scheduler for (params.yaml `resources`, runtime in
    minutes), and a GPU for training jobs when `device` asks for CUDA. Results do not
    depend on these: threads and numeric mode are set by the job itself."""
    spec = {**config["resources"]["default"], **config["resources"].get(rule, {})}
    if rule in {"pretrain_autoencoder", "train_clustering", "train_tagger", "al_round",
                "al_successor"}:
        spec["gpu"] = int(config["device"] == "cuda")
    return spec


wildcard_constraints:
    seed=r"\d+",
    dataset=r"[A-Za-z0-9_\-]+",
    corpus=r"[A-Za-z0-9_\-]+",
    model=r"[A-Za-z0-9_\-]+",
    name=r"[A-Za-z0-9_\-]+",
    strategy=r"[A-Za-z0-9_]+",
    round=r"\d+",


# Every evaluation job: its kind of result and wildcards.
RESULT_JOBS = [
    *[("clustering_result", {"dataset": dataset, "model": model, "seed": seed})
      for dataset in DATASETS for model in CLUSTERING_MODELS for seed in SEEDS],
    *[("tagging_result", {"corpus": corpus, "model": model, "seed": seed})
      for corpus in CORPORA for model in wf.tagging_models(config, corpus) for seed in SEEDS],
    *wf.al_jobs(config),  # the active-learning simulation: none unless an overlay asks
]
RESULTS = [wf.path(kind, **w) + "/metrics.json" for kind, w in RESULT_JOBS]
# The report reads an evaluation's metrics, run ids and figures: it depends on all its
# outputs, so a figure that changes while its metrics stay the same makes it stale too (for
# DVC also, which compares contents).
REPORTED = [f for kind, w in RESULT_JOBS for f in wf.files(kind, **w)]


# Every configured result, not only the report: an existing report must not hide the
# results of a dataset, model or seed added since.
rule all:
    input:
        RESULTS,
        expand(wf.PATHS["report"] + "/{file}", file=wf.report_files(config)),


onstart:
    shell(f"{PY} init-tracking && {PY} reap-runs && {PY} remove-leftovers")


onsuccess:
    # DVC's view of the same stages: record hashes in dvc.lock and cache the outputs of
    # every stage that is complete (a partial run commits what it made).
    if params.ENV_VAR not in os.environ:
        shell(f"{PY} dvc-commit")
    else:
        print("overlay configuration: dvc.lock describes params.yaml only; not committed")


onerror:
    shell(f"{PY} reap-runs")


rule export:
    log:
        log("export"),
    resources:
        **resources("export"),
    input:
        lambda w: [*wf.export_files(config, w.name), *wf.code("export")],
    output:
        wf.PATHS["export"],
    params:
        stage_params("export"),
    shell:
        f"{JOB} export --name {{wildcards.name}}"


rule fetch:
    log:
        log("raw"),
    resources:
        **resources("fetch"),
    input:
        wf.code("fetch"),
    output:
        wf.PATHS["raw"],
    params:
        stage_params("fetch"),
    shell:
        f"{JOB} fetch --group {{wildcards.group}} --name {{wildcards.name}} --key {{wildcards.key}}"


rule prepare_clustering:
    log:
        log("prepared_clustering"),
    resources:
        **resources("prepare_clustering"),
    input:
        lambda w: [*wf.dataset_files(config, w.dataset), *wf.code("prepare_clustering")],
    output:
        outputs("prepared_clustering"),
    params:
        stage_params("prepare_clustering"),
    shell:
        f"{JOB} prepare-clustering --dataset {{wildcards.dataset}}"


rule prepare_tagging:
    log:
        log("prepared_tagging"),
    resources:
        **resources("prepare_tagging"),
    input:
        lambda w: [*wf.corpus_files(config, w.corpus), *wf.code("prepare_tagging")],
    output:
        outputs("prepared_tagging"),
    params:
        stage_params("prepare_tagging"),
    shell:
        f"{JOB} prepare-tagging --corpus {{wildcards.corpus}}"


rule pretrain_autoencoder:
    threads: config["threads"]
    log:
        log("autoencoder"),
    resources:
        **resources("pretrain_autoencoder"),
    input:
        wf.files("prepared_clustering", dataset="{dataset}"),
        wf.code("pretrain"),
    output:
        outputs("autoencoder"),
    params:
        stage_params("pretrain"),
    shell:
        f"{JOB} pretrain --dataset {{wildcards.dataset}} --seed {{wildcards.seed}}"


rule train_clustering:
    threads: config["threads"]
    log:
        log("clustering_model"),
    resources:
        **resources("train_clustering"),
    input:
        wf.files("prepared_clustering", dataset="{dataset}"),
        lambda w: wf.files("autoencoder", dataset=w.dataset, seed=w.seed)
        if w.model in wf.USES_AUTOENCODER else [],
        wf.code("train_clustering"),
    output:
        outputs("clustering_model"),
    params:
        stage_params("train_clustering"),
    shell:
        f"{JOB} train-clustering --dataset {{wildcards.dataset}} --model {{wildcards.model}}"
        " --seed {wildcards.seed}"


rule evaluate_clustering:
    threads: config["threads"]
    log:
        log("clustering_result"),
    resources:
        **resources("evaluate_clustering"),
    input:
        wf.files("prepared_clustering", dataset="{dataset}"),
        wf.files("clustering_model", dataset="{dataset}", model="{model}", seed="{seed}"),
        wf.code("evaluate_clustering"),
    output:
        outputs("clustering_result"),
    params:
        stage_params("evaluate_clustering"),
    shell:
        f"{JOB} evaluate-clustering --dataset {{wildcards.dataset}} --model {{wildcards.model}}"
        " --seed {wildcards.seed}"


rule train_tagger:
    threads: config["threads"]
    log:
        log("tagger"),
    resources:
        **resources("train_tagger"),
    input:
        wf.files("prepared_tagging", corpus="{corpus}"),
        lambda w: wf.transfer_source(config, w.model, w.seed) or [],
        wf.code("train_tagger"),
    output:
        outputs("tagger"),
    params:
        stage_params("train_tagger"),
    shell:
        f"{JOB} train-tagger --corpus {{wildcards.corpus}} --model {{wildcards.model}}"
        " --seed {wildcards.seed}"


rule evaluate_tagger:
    threads: config["threads"]
    log:
        log("tagging_result"),
    resources:
        **resources("evaluate_tagger"),
    input:
        wf.files("prepared_tagging", corpus="{corpus}"),
        wf.files("tagger", corpus="{corpus}", model="{model}", seed="{seed}"),
        wf.code("evaluate_tagger"),
    output:
        outputs("tagging_result"),
    params:
        stage_params("evaluate_tagger"),
    shell:
        f"{JOB} evaluate-tagger --corpus {{wildcards.corpus}} --model {{wildcards.model}}"
        " --seed {wildcards.seed}"


rule al_round:
    threads: config["threads"]
    log:
        log("al_round"),
    resources:
        **resources("al_round"),
    input:
        lambda w: wf.al_round_inputs(w.corpus, w.strategy, w.seed, w.round),
        wf.code("al_round"),
    output:
        outputs("al_round"),
    params:
        stage_params("al_round"),
    shell:
        f"{JOB} al-round --corpus {{wildcards.corpus}} --strategy {{wildcards.strategy}}"
        " --seed {wildcards.seed} --round {wildcards.round}"


rule al_successor:
    threads: config["threads"]
    log:
        log("al_successor"),
    resources:
        **resources("al_successor"),
    input:
        wf.files("prepared_tagging", corpus="{corpus}"),
        wf.path("al_round", corpus="{corpus}", strategy="{strategy}", seed="{seed}",
                round="{round}") + "/selection.json",
        wf.code("al_successor"),
    output:
        outputs("al_successor"),
    params:
        stage_params("al_successor"),
    shell:
        f"{JOB} al-successor --corpus {{wildcards.corpus}} --strategy {{wildcards.strategy}}"
        " --seed {wildcards.seed} --round {wildcards.round} --model {wildcards.model}"


rule report:
    log:
        log("report"),
    resources:
        **resources("report"),
    input:
        REPORTED,
        wf.code("report"),
    output:
        expand(wf.PATHS["report"] + "/{file}", file=wf.report_files(config)),
    params:
        stage_params("report"),
    shell:
        f"{JOB} report"
