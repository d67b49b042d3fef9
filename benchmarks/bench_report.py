"""The report stage's wall time for a paper profile's size, on made-up results.

    python benchmarks/bench_report.py [--profile configs/paper-tagging.yaml] [--repeats 3]

Writes every evaluation job's metrics.json, run.json and figures for the profile
(tests/synthetic_results.py: made-up numbers, real PNGs copied to every job) in a temporary
directory, then times `python -m pipeline report` there as the DAG runs it (a fresh
interpreter: imports included), best and median of the repeats, and prints the page's size.
It measures rendering, not results: the default run's report time comes from its own run
(benchmarks/job_seconds.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from synthetic_results import synthesise  # noqa: E402

from pipeline import config, workflow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=str(ROOT / "configs" / "paper-tagging.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = config.load(ROOT / config.PARAMS_FILE, [args.profile])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesise(root, cfg)
        (root / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if k != config.ENV_VAR}
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pipeline", "report"], cwd=root, env=env,
                           check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        jobs = sum(1 for _ in (root / "results").rglob("metrics.json"))
        page = root / workflow.path("report") / "results.html"
        print(f"profile {Path(args.profile).name}: {jobs} evaluation jobs, seeds {cfg['seeds']}")
        print(f"report stage: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
              f"of {args.repeats}")
        print(f"results.html: {page.stat().st_size / 1e6:.1f} MB, "
              f"{len(page.read_text().split('<img')) - 1} images")


if __name__ == "__main__":
    main()
