"""Where a Snakemake run's time went: job-seconds by rule, and the share spent importing.

    python benchmarks/job_seconds.py [RUN_DIR]     (default: this checkout)

Job times come from Snakemake's own records (``.snakemake/metadata``: start and end of the
last run of each output, grouped by job). The import cost of a
rule is the wall time of a fresh interpreter importing what its job imports (the stage
module, after the numeric mode is applied, and MLflow where the stage opens a run) less
that of a bare interpreter, best of three; times the rule's job count, it is the import
share.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from pipeline import workflow

RULE_STAGE = {"pretrain_autoencoder": "pretrain"}  # rules named otherwise than their stage


def jobs(run_dir: Path) -> dict[str, list[float]]:
    """Seconds of each finished job, by rule (its outputs' records share a job hash)."""
    spans: dict[tuple[str, int], tuple[float, float]] = {}
    for record in (run_dir / ".snakemake" / "metadata").iterdir():
        meta = json.loads(record.read_text())
        if meta.get("incomplete") or not meta.get("endtime"):
            continue
        key = (meta["rule"], meta["job_hash"])
        start, end = spans.get(key, (meta["starttime"], meta["endtime"]))
        spans[key] = (min(start, meta["starttime"]), max(end, meta["endtime"]))
    out = defaultdict(list)
    for (rule, _), (start, end) in spans.items():
        out[rule].append(end - start)
    return dict(out)


def startup(code: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", type=Path, default=Path("."))
    args = ap.parse_args()
    by_rule = jobs(args.run_dir)
    bare = startup("pass")
    total = sum(sum(t) for t in by_rule.values())
    imports_total = 0.0
    print(f"{'rule':<22}{'jobs':>5}{'job-s':>9}{'mean s':>8}{'import s':>10}")
    for rule, times in sorted(by_rule.items(), key=lambda kv: -sum(kv[1])):
        stage = RULE_STAGE.get(rule, rule)
        module = workflow.STAGE_MODULES.get(stage)
        cost = 0.0
        if module:
            tracked = "pipeline/tracking.py" in workflow.code(stage)  # opens an MLflow run
            cost = startup("from pipeline.numerics import apply_configured; apply_configured(); "
                           f"import {module}" + ("; import mlflow" if tracked else "")) - bare
        imports_total += cost * len(times)
        print(f"{rule:<22}{len(times):>5}{sum(times):>9.1f}{sum(times) / len(times):>8.1f}"
              f"{cost:>10.2f}")
    print(f"{'all':<22}{sum(map(len, by_rule.values())):>5}{total:>9.1f}")
    print(f"imports: {imports_total:.0f} of {total:.0f} job-seconds "
          f"({100 * imports_total / total:.0f} %)")


if __name__ == "__main__":
    main()
