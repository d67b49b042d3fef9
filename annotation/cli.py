"""The annotators' side: ``python -m annotation <command> --help``.

Settings come from the ``annotation:`` block of params.yaml (``--params``); the server from
LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (the key is never printed or logged).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, get, load
from pipeline.errors import Parser, add_debug, answer, integer


def settings(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load(args.params)
    if not isinstance(cfg.get("annotation"), Mapping):
        raise ConfigError(f"{args.params or 'params'}: no annotation: block")
    return cfg


def export_entry(cfg: Mapping[str, Any], name: str | None) -> tuple[str, Mapping[str, Any]]:
    """The ``annotation.exports`` entry named, or the only one."""
    exports = get(cfg, "annotation.exports")
    if name is None and len(exports) == 1:
        name = next(iter(exports))
    if name not in exports:
        raise ConfigError(f"params: annotation.exports has {sorted(exports)}; "
                          f"pick one with --export (got {name!r})")
    return name, exports[name]


def client(cfg: Mapping[str, Any]):
    from annotation.client import Client

    return Client(os.environ.get("LABEL_STUDIO_URL", ""),
                  os.environ.get("LABEL_STUDIO_API_KEY", ""), get(cfg, "annotation.server"))


def emit(obj: Mapping[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False, sort_keys=True))


def cmd_snapshot_iob2(args: argparse.Namespace) -> int:
    from annotation.convert import sentences_to_tasks
    from annotation.snapshot import write_snapshot
    from annotation.uner import read_uner

    tasks = sentences_to_tasks(read_uner(args.iob2))
    emit({"snapshot": str(args.out), "tasks": len(tasks),
          "sha256": write_snapshot(args.out, tasks)})
    return 0


def cmd_labeling_config(args: argparse.Namespace) -> int:
    from annotation.labeling import CONFIG_PATH, labeling_config
    from pipeline.io import write_text

    cfg = settings(args)
    xml = labeling_config(get(cfg, "annotation.labels"), get(cfg, "annotation.interface"))
    if args.check:
        if not CONFIG_PATH.exists() or CONFIG_PATH.read_text(encoding="utf-8") != xml:
            print(f"{CONFIG_PATH} differs from params; run `python -m annotation "
                  "labeling-config`", file=sys.stderr)
            return 1
        return 0
    write_text(CONFIG_PATH, xml)
    emit({"labeling_config": str(CONFIG_PATH)})
    return 0


def project_fields(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Everything ``setup`` sets on the project besides its title."""
    from annotation.labeling import instructions_html, labeling_config

    labels, interface = get(cfg, "annotation.labels"), get(cfg, "annotation.interface")
    return {**get(cfg, "annotation.project"),
            "label_config": labeling_config(labels, interface),
            "expert_instruction": instructions_html(labels, interface)}


def cmd_setup(args: argparse.Namespace) -> int:
    cfg = settings(args)
    _, entry = export_entry(cfg, args.export)
    project_id, state = client(cfg).ensure_project(entry["project"], project_fields(cfg))
    emit({"project": entry["project"], "id": project_id, "state": state})
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from annotation import corpus

    cfg = settings(args)
    _, entry = export_entry(cfg, args.export)
    push = get(cfg, "annotation.push")
    if args.strategy and args.clusters:
        raise ConfigError("push: --clusters orders by given clusters, --strategy by the model; "
                          "pick one (--strategy cluster clusters the model's embeddings)")
    tasks = corpus.read_corpus(args.corpus, args.format or corpus.guess_format(args.corpus))
    if args.strategy:
        return push_ranked(args, cfg, entry["project"], tasks)
    order = list(range(len(tasks)))
    if args.clusters:
        order = corpus.stratified_order(corpus.read_clusters(args.clusters, len(tasks)),
                                        int(push["sample_seed"]))
    if args.sample is not None:
        order = order[:args.sample]
    ls = client(cfg)
    project_id = ls.project_id(entry["project"])
    existing = ls.task_texts(project_id)
    chosen: list[dict[str, Any]] = []
    for i in order:
        if tasks[i]["text"] not in existing:
            existing.add(tasks[i]["text"])
            chosen.append(tasks[i])
    payload: list[dict[str, Any]] = [{"data": data} for data in chosen]
    if args.model and chosen:
        preds = corpus.predictions(args.model, chosen, get(cfg, "annotation.labels"),
                                   get(cfg, "annotation.interface"), int(push["predict_batch"]))
        payload = [{"data": data, "predictions": [pred]} for data, pred in zip(
            chosen, preds, strict=True)]
    ids = ls.import_tasks(project_id, payload, int(push["import_batch"]))
    emit({"project": entry["project"], "corpus": str(args.corpus), "texts": len(tasks),
          "selected": len(order), "already_in_project": len(order) - len(chosen),
          "imported": len(ids), "with_predictions": bool(args.model)})
    return 0


def push_ranked(args: argparse.Namespace, cfg: Mapping[str, Any], title: str,
                tasks: list[dict[str, Any]]) -> int:
    """``push --strategy``: rank the texts not yet in the project (pipeline.active_learning),
    import the ``--sample`` most informative in rank order, each prediction scored with the
    model's confidence, and set the project's queue to serve them first: "Uncertainty
    sampling" on this model's predictions for strategies that rank by confidence, else
    "Sequential sampling" (import order). One MLflow run (experiment ``annotation``)
    records the strategy, the model's run id, the pool's sha256 and the ranking."""
    import math

    from annotation import corpus
    from pipeline.active_learning import BY_CONFIDENCE, needs
    from pipeline.config import flatten
    from pipeline.io import sha256_file
    from pipeline.tracking import job_run

    push, query = get(cfg, "annotation.push"), get(cfg, "active_learning.query")
    if needs(args.strategy, query)["model"] and not args.model:
        raise ConfigError(f"push --strategy {args.strategy} needs a trained tagger: --model")
    ls = client(cfg)
    project_id = ls.project_id(title)
    fresh = corpus.new_tasks(tasks, ls.task_texts(project_id))
    n = len(fresh) if args.sample is None else min(args.sample, len(fresh))
    version = corpus.model_version(args.model) if args.model else None
    sampling = "Uncertainty sampling" if args.strategy in BY_CONFIDENCE else "Sequential sampling"
    seed = int(push["sample_seed"])
    params = {"strategy": args.strategy, "sample": str(n), "model_run_id": str(version),
              "pool": str(args.corpus), "pool_sha256": sha256_file(args.corpus),
              "project": title, "sampling": sampling,
              **flatten(query, "active_learning.query")}
    inputs = [str(args.corpus), *([str(args.model)] if args.model else [])]
    with job_run("annotation", f"push/{args.strategy}", "push", params, seed, inputs, cfg,
                 "cpu", {"project_id": str(project_id)}) as run:
        order, confidence = corpus.rank_tasks(args.model, fresh, args.strategy, seed, query, n)
        chosen = [fresh[i] for i in order[:n]]
        payload: list[dict[str, Any]] = [{"data": data} for data in chosen]
        if args.model and chosen:
            preds = corpus.predictions(args.model, chosen, get(cfg, "annotation.labels"),
                                       get(cfg, "annotation.interface"),
                                       int(push["predict_batch"]))
            payload = [{"data": data, "predictions": [pred | {"score": float(confidence[i])}]}
                       for data, pred, i in zip(chosen, preds, order[:n], strict=True)]
        ids = ls.import_tasks(project_id, payload, int(push["import_batch"]))
        ls.set_queue(project_id, sampling, version)
        ranking = [{"rank": r + 1, "id": corpus.task_id(fresh[i]),
                    "confidence": None if math.isnan(confidence[i]) else float(confidence[i]),
                    "imported": r < n} for r, i in enumerate(order)]
        run.log_text(json.dumps(ranking, indent=1), "push/ranking.json")
        run.log_metrics({"imported": len(ids), "pool_new": len(fresh)})
    emit({"project": title, "corpus": str(args.corpus), "texts": len(tasks),
          "strategy": args.strategy, "already_in_project": len(tasks) - len(fresh),
          "imported": len(ids), "with_predictions": bool(args.model), "sampling": sampling,
          "model_version": version, "mlflow_run": run.run_id})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from annotation.client import export_project

    cfg = settings(args)
    _, entry = export_entry(cfg, args.export)
    emit(export_project(os.environ.get("LABEL_STUDIO_URL", ""),
                        os.environ.get("LABEL_STUDIO_API_KEY", ""), entry["project"],
                        args.out or entry["snapshot"], get(cfg, "annotation.server")))
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from annotation.agreement import agreement, log_mlflow, write_report
    from annotation.snapshot import read_snapshot
    from pipeline.config import flatten
    from pipeline.io import sha256_file

    cfg = settings(args)
    name, entry = export_entry(cfg, args.export)
    source = args.snapshot or entry["snapshot"]
    conversion, options = get(cfg, "annotation.conversion"), get(cfg, "annotation.agreement")
    result = agreement(read_snapshot(source), get(cfg, "annotation.labels"), conversion)
    paths = write_report(result, str(source), args.out_dir or options["out_dir"],
                         int(options["max_disagreements"]))
    run_id = None
    if not args.no_mlflow:
        params = {"export": name, "snapshot": str(source), "snapshot_sha256":
                  sha256_file(source), "labels": json.dumps(get(cfg, "annotation.labels"))}
        params |= {f"conversion.{k}": v for k, v in flatten(conversion).items()}
        run_id = log_mlflow(result, params, options["experiment"], paths)
    emit({"report": [str(p) for p in paths], "mlflow_run": run_id,
          "pairs": len(result["pairwise"]),
          "tasks_with_multiple_annotators": result["tasks_with_multiple_annotators"]})
    return 0


def interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops `serve` the way Ctrl-C does."""
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    from annotation import server

    cfg = settings(args)
    opts = get(cfg, "annotation.serve")
    binary = server.find_binary()
    if binary is None:
        raise server.ServerError("no Label Studio server: run .ci/install-label-studio.sh "
                                 "or set LABEL_STUDIO_BIN")
    data_dir = Path(args.data_dir or opts["data_dir"]).resolve()
    host, port = opts["host"], int(args.port or opts["port"])
    password = os.environ.get("LABEL_STUDIO_PASSWORD") or server.secret_file(
        data_dir / "admin-password", make=True)
    token = server.secret_file(data_dir / "api-key", make=True)
    env = server.server_env(data_dir, opts["username"], password, token)
    log = data_dir / "server.log"
    url = f"http://{host}:{port}"
    proc = server.start(binary, env, host, port, log)
    signal.signal(signal.SIGTERM, interrupt)
    where = ("$LABEL_STUDIO_PASSWORD" if "LABEL_STUDIO_PASSWORD" in os.environ
             else data_dir / "admin-password")
    try:
        server.wait_healthy(proc, url, float(opts["start_timeout_s"]), log)
        print(f"Label Studio is up at {url}\n"
              f"  log in as {opts['username']} (password in {where})\n"
              f"  for setup/push/export: export LABEL_STUDIO_URL={url} "
              f"LABEL_STUDIO_API_KEY=$(cat {data_dir / 'api-key'})\n"
              f"  server log: {log}; stop with Ctrl-C", flush=True)
        proc.wait()
        return proc.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop(proc, float(opts["stop_timeout_s"]))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m annotation", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params",
                        help="params file (default: $PIPELINE_PARAMS, else params.yaml)")
    add_debug(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, func, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func)
        return p

    p = command("snapshot-iob2", cmd_snapshot_iob2,
                "convert a gold IOB2 file into a Label Studio JSON export (same bytes each run)")
    p.add_argument("--iob2", required=True, help="UNER-style IOB2 file")
    p.add_argument("--out", required=True, help="snapshot JSON to write (+ .sha256)")

    p = command("labeling-config", cmd_labeling_config,
                "write annotation/labeling_config.xml from the labels in params")
    p.add_argument("--check", action="store_true", help="only check the committed file")

    p = command("serve", cmd_serve, "run a local Label Studio for annotators (Ctrl-C stops)")
    p.add_argument("--port", type=integer(1, 65535), help="instead of annotation.serve.port")
    p.add_argument("--data-dir", help="instead of annotation.serve.data_dir")

    for name, func, text in [
        ("setup", cmd_setup, "create the project, or update it to match params (idempotent)"),
        ("push", cmd_push, "import a corpus as tasks, skipping texts already in the project"),
        ("export", cmd_export, "export all tasks into the snapshot (atomic, + .sha256)"),
        ("agreement", cmd_agreement, "inter-annotator agreement -> reports/ and MLflow"),
    ]:
        p = command(name, func, text)
        p.add_argument("--export", help="entry of annotation.exports (default: the only one)")
        if name == "push":
            p.add_argument("corpus", help="text lines, IOB2, CoNLL-U or a Label Studio export")
            p.add_argument("--format", choices=("text", "iob2", "conllu", "label_studio"),
                           help="default: from the file name")
            p.add_argument("--model", help="tagger bundle: add its predictions as "
                                           "pre-annotations (model_version from run.json)")
            p.add_argument("--clusters", help="one cluster id per text: push in an order "
                                              "that visits every cluster in turn")
            p.add_argument("--strategy", help="rank the texts not yet in the project by this "
                           "query strategy (random, least_confidence, mnlp, token_entropy, bald, "
                           "cluster, mnlp_diverse; all but random need --model) and push the "
                           "most informative first")
            p.add_argument("--sample", type=integer(1), help="push only the first N (after "
                                                             "--clusters or --strategy)")
        if name == "export":
            p.add_argument("--out", help="instead of the entry's snapshot path")
        if name == "agreement":
            p.add_argument("--snapshot", help="instead of the entry's snapshot path")
            p.add_argument("--out-dir", help="instead of annotation.agreement.out_dir")
            p.add_argument("--no-mlflow", action="store_true", help="write the report only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The numeric mode is set up first: ``push`` tags sentences with a trained model."""
    from pipeline.numerics import apply

    args = build_parser().parse_args(argv)

    def command() -> int:
        cfg = load(args.params)
        apply(cfg["numerics"], cfg["threads"])
        return args.func(args)

    return answer(command, args.debug, explain)


def explain(exc: Exception) -> str | None:
    """One line for a user's error: bad input or a wrong argument (ValueError, OSError; a
    failed Label Studio call is a BadInput), a numeric mode or server that cannot be set up,
    an MLflow store that does not answer. None (a bug, with its traceback) otherwise."""
    from annotation.server import ServerError
    from pipeline.numerics import NumericsError
    from pipeline.tracking import store_problem

    if isinstance(exc, (OSError, ValueError, NumericsError, ServerError)):
        return str(exc)
    return store_problem(exc)
