"""``python -m pipeline <stage>``: one entry point per stage, shared by Snakefile and dvc.yaml."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys

from pipeline.errors import Parser, add_debug, answer, integer

# The params collection a stage argument names an entry of (--model: the stage's own).
NAMED = {"dataset": "clustering.datasets", "corpus": "tagging.corpora",
         "name": "annotation.exports"}
CLUSTERING_STAGES = {"prepare-clustering", "pretrain", "train-clustering", "evaluate-clustering"}


def _device(text: str) -> str:
    """--device: what torch.device takes, checked before the first job starts."""
    if text == "cpu" or re.fullmatch(r"cuda(:\d+)?", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not cpu, cuda or cuda:<index>")


def _parser() -> argparse.ArgumentParser:
    from pipeline.config import seed_range

    seed = integer(*seed_range())  # the seeds params.yaml may list
    p = Parser(prog="python -m pipeline", description=__doc__)
    p.add_argument("--log", help="also write what the command prints to this file (the "
                   "Snakefile's log: of each rule)")
    add_debug(p)
    sub = p.add_subparsers(dest="command", required=True)

    def stage(name: str, help: str, *args: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        for arg in args:
            sp.add_argument(f"--{arg}", required=True, type=seed if arg == "seed" else str,
                            choices=("clustering", "tagging") if arg == "group" else None)
        return sp

    stage("export", "Label Studio export (server or committed snapshot) -> data/annotations",
          "name")
    stage("fetch", "download a url: data file into data/raw and verify its sha256",
          "group", "name", "key")
    stage("prepare-clustering", "dataset -> data/prepared/clustering", "dataset")
    stage("prepare-tagging", "corpus -> data/prepared/tagging (train/dev/test)", "corpus")
    stage("pretrain", "pretrain the shared autoencoder", "dataset", "seed")
    stage("train-clustering", "fit one clustering method", "dataset", "model", "seed")
    stage("evaluate-clustering", "ACC/NMI/ARI and figures", "dataset", "model", "seed")
    stage("train-tagger", "train one tagger variant", "corpus", "model", "seed")
    stage("evaluate-tagger", "accuracy, entity P/R/F1, predictions", "corpus", "model", "seed")
    stage("al-round", "one active-learning round: select, oracle labels, train, evaluate",
          "corpus", "strategy", "seed", "round")
    stage("al-successor", "another tagger on an active-learning round's selection",
          "corpus", "strategy", "seed", "round", "model")
    stage("report", "results across seeds -> reports/")
    sub.add_parser("init-tracking", help="create the MLflow store and experiments")
    sub.add_parser("reap-runs", help="mark runs of killed jobs FAILED")
    sub.add_parser("remove-leftovers", help="delete temporaries of killed writes")
    rep = sub.add_parser("replicate", help="re-run recorded MLflow runs and compare outputs")
    rep.add_argument("run_ids", nargs="*", help="MLflow run ids")
    rep.add_argument("--all", action="store_true", help="every run behind reports/results.md")
    rep.add_argument("--allow-code-mismatch", action="store_true",
                     help="go on when the checkout is not the recorded commit")
    rep.add_argument("--keep", action="store_true", help="keep the scratch directory")
    gold = sub.add_parser("golden", help="run the golden jobs and print their sha256 as JSON")
    gold.add_argument("--job", action="append", help="only this job (repeatable)")
    gold.add_argument("--device", default="cpu", type=_device, help="cpu (default) or cuda")
    sub.add_parser("dvc-commit", help="dvc commit every stage whose outputs exist")
    pull = sub.add_parser("dvc-pull", help="dvc pull, then date the outputs for Snakemake")
    pull.add_argument("--remote", help="a DVC remote other than the default")
    dvc = sub.add_parser("dvc-yaml", help="write dvc.yaml from the Snakemake DAG")
    dvc.add_argument("--check", action="store_true",
                     help="exit 1 if dvc.yaml differs from the DAG instead of writing it")
    return p


def main(argv: list[str] | None = None) -> int:
    """The numeric mode is set up first, before any stage imports a numeric library."""
    from pipeline.numerics import apply_configured

    args = _parser().parse_args(argv)
    if args.log:
        _tee(args.log)

    def command() -> int:
        apply_configured()
        _check_names(args)
        return _run(args)

    return answer(command, args.debug, _explain)


def _explain(exc: Exception) -> str | None:
    """User errors get one line: bad input or a wrong argument (a ValueError or OSError
    naming file, record or key), a numeric mode that cannot be set up, a tool we run (dvc)
    that failed and said why, an MLflow store without the run asked for or without a server,
    an op without a deterministic kernel. Anything else is a bug (None: it keeps its
    traceback)."""
    from pipeline.numerics import NumericsError

    if isinstance(exc, (ValueError, OSError, NumericsError)):
        return str(exc)
    if isinstance(exc, subprocess.CalledProcessError):  # dvc, snakemake: said why above
        cmd = exc.cmd if isinstance(exc.cmd, str) else shlex.join(map(str, exc.cmd))
        return f"`{cmd}` failed (exit {exc.returncode})"
    from pipeline.seeding import nondeterministic_op
    from pipeline.tracking import store_problem

    return store_problem(exc) or (nondeterministic_op(exc)
                                  if isinstance(exc, RuntimeError) else None)


def _check_names(args: argparse.Namespace) -> None:
    """A --dataset, --corpus, --model, --name or fetch --key that params does not declare
    is a wrong argument, named, before a stage meets it as a KeyError."""
    from pipeline import config

    cfg = config.load()
    given = {k: v for k, v in vars(args).items() if k in (*NAMED, "model") and v is not None}
    if args.command == "fetch":
        given = {}
        section = "datasets" if args.group == "clustering" else "corpora"
        files = config.entry(cfg, f"{args.group}.{section}", args.name)
        if not isinstance(files.get(args.key), dict):
            raise config.ConfigError(f"{config.source()}: {args.group}.{section}.{args.name}."
                                     f"{args.key} is not a {{url:, sha256:}} entry to fetch")
    for arg, name in given.items():
        collection = NAMED.get(arg) or ("clustering.methods" if args.command in
                                        CLUSTERING_STAGES else "tagging.variants")
        config.entry(cfg, collection, name)


def _tee(path: str) -> None:
    """Everything printed from here on goes to ``path`` too (made afresh), as it does to the
    terminal: the same log under Snakemake, DVC or a cluster scheduler."""
    import io
    from pathlib import Path

    class Tee(io.TextIOBase):
        def __init__(self, stream: io.TextIOBase, copy: io.TextIOBase) -> None:
            self.stream, self.copy = stream, copy

        def write(self, text: str) -> int:
            self.copy.write(text)
            self.copy.flush()
            return self.stream.write(text)

        def flush(self) -> None:
            self.stream.flush()

        def isatty(self) -> bool:
            return self.stream.isatty()

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    copy = open(path, "w", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
    sys.stdout, sys.stderr = Tee(sys.stdout, copy), Tee(sys.stderr, copy)


def _run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "export":
        from pipeline.stages import export

        export.run(args.name)
    elif cmd == "fetch":
        from pipeline.stages import fetch

        fetch.run(args.group, args.name, args.key)
    elif cmd.startswith("prepare-"):
        from pipeline.stages import prepare

        if cmd == "prepare-clustering":
            prepare.clustering(args.dataset)
        else:
            prepare.tagging(args.corpus)
    elif cmd in ("pretrain", "train-clustering", "evaluate-clustering"):
        from pipeline.stages import clustering

        if cmd == "pretrain":
            clustering.pretrain(args.dataset, args.seed)
        elif cmd == "train-clustering":
            clustering.train(args.dataset, args.model, args.seed)
        else:
            clustering.evaluate(args.dataset, args.model, args.seed)
    elif cmd in ("train-tagger", "evaluate-tagger"):
        from pipeline.stages import tagging

        if cmd == "train-tagger":
            tagging.train(args.corpus, args.model, args.seed)
        else:
            tagging.evaluate(args.corpus, args.model, args.seed)
    elif cmd in ("al-round", "al-successor"):
        from pipeline.stages import active_learning

        if cmd == "al-round":
            active_learning.run_round(args.corpus, args.strategy, args.seed, int(args.round))
        else:
            active_learning.run_successor(args.corpus, args.strategy, args.seed,
                                          int(args.round), args.model)
    elif cmd == "report":
        from pipeline import report

        report.run()
    elif cmd == "init-tracking":
        from pipeline import tracking

        tracking.init_store()
    elif cmd == "reap-runs":
        from pipeline import tracking

        reaped = tracking.reap_orphans()
        if reaped:
            print(f"marked {reaped} run(s) of killed jobs FAILED", file=sys.stderr)
    elif cmd == "remove-leftovers":
        from pipeline import workflow
        from pipeline.io import remove_leftovers

        for path in remove_leftovers(workflow.OUTPUT_ROOTS):
            print(f"removed {path} (a write killed before it finished)", file=sys.stderr)
    elif cmd == "replicate":
        from pipeline import replicate

        return replicate.main(args.run_ids, args.all, args.allow_code_mismatch, args.keep)
    elif cmd == "golden":
        import json

        from pipeline import golden

        print(json.dumps(golden.run(args.job, args.device), indent=2, sort_keys=True))
    elif cmd == "dvc-commit":
        from pipeline import dvcgen

        return dvcgen.commit()
    elif cmd == "dvc-pull":
        from pipeline import dvcgen

        return dvcgen.pull(args.remote)
    elif cmd == "dvc-yaml":
        from pipeline import dvcgen

        return dvcgen.main(check=args.check)
    return 0
