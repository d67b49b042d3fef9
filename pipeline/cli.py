"""``python -m pipeline <stage>``: one entry point per stage, shared by Snakefile and dvc.yaml."""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    p.add_argument("--log", help="also write what the command prints to this file (the "
                   "Snakefile's log: of each rule)")
    sub = p.add_subparsers(dest="command", required=True)

    def stage(name: str, help: str, *args: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        for arg in args:
            sp.add_argument(f"--{arg}", required=True, type=int if arg == "seed" else str)
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
    gold.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    sub.add_parser("dvc-commit", help="dvc commit every stage whose outputs exist")
    pull = sub.add_parser("dvc-pull", help="dvc pull, then date the outputs for Snakemake")
    pull.add_argument("--remote", help="a DVC remote other than the default")
    dvc = sub.add_parser("dvc-yaml", help="write dvc.yaml from the Snakemake DAG")
    dvc.add_argument("--check", action="store_true",
                     help="exit 1 if dvc.yaml differs from the DAG instead of writing it")
    return p


def main(argv: list[str] | None = None) -> int:
    """Bad input (a ValueError or OSError naming file, record and problem) gets one line;
    anything else is a bug and keeps its traceback. The numeric mode is set up first,
    before any stage imports a numeric library."""
    from pipeline.numerics import NumericsError, apply_configured

    args = _parser().parse_args(argv)
    if args.log:
        _tee(args.log)
    try:
        apply_configured()
        return _run(args)
    except (ValueError, OSError, NumericsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        from pipeline.seeding import nondeterministic_op

        refusal = nondeterministic_op(e)
        if refusal is None:
            raise
        print(f"error: {refusal}", file=sys.stderr)
        return 1


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
