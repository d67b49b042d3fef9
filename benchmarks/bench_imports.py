"""What a job pays before it does any work: each heavy import and each setup step, alone.

    python benchmarks/bench_imports.py [--repeats 3]

Imports are timed by ``python -X importtime`` in a fresh interpreter (the cumulative time of
the top-level package, after the numeric mode is applied as every job does); setup steps by
the wall time of a fresh interpreter doing that step less one doing only its imports. Each
figure is the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

PRELUDE = "from pipeline.numerics import apply_configured; apply_configured(); "
IMPORTS = ["torch", "mlflow", "sklearn", "scipy", "matplotlib.pyplot", "pandas", "seqeval",
           "umap", "yaml", "jsonschema"]
STEPS = {  # name: (imports, step)
    "torch.use_deterministic_algorithms (imports the inductor compiler)":
        ("import torch", "torch.use_deterministic_algorithms(True)"),
    "pipeline.seeding.deterministic_torch (the eager flag only)":
        ("from pipeline.seeding import deterministic_torch", "deterministic_torch()"),
    "first optimizer (torch imports dynamo for add_param_group)":
        ("import torch", "torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)"),
    "MLflow SQLite store opened, experiment looked up":
        ("import mlflow", "mlflow.set_tracking_uri('sqlite:///{db}'); "
                          "mlflow.get_experiment_by_name('clustering')"),
}


def import_seconds(module: str) -> float:
    """Cumulative import time of ``module`` as ``-X importtime`` reports it."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", PRELUDE + f"import {module}"],
                         capture_output=True, text=True, check=True).stderr
    for line in out.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1e6
    return 0.0


def wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'import (fresh interpreter, after the numeric mode)':<70}{'s':>7}")
    for module in IMPORTS:
        print(f"{module:<70}{min(import_seconds(module) for _ in range(args.repeats)):>7.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        db = f"{tmp}/mlflow.db"
        wall(f"import mlflow; mlflow.set_tracking_uri('sqlite:///{db}'); "
             "mlflow.set_experiment('clustering')")  # create the store once
        print(f"\n{'setup step (wall, less its imports)':<70}{'s':>7}")
        for name, (imports, step) in STEPS.items():
            step = step.format(db=db)
            cost = (min(wall(PRELUDE + imports + "; " + step) for _ in range(args.repeats))
                    - min(wall(PRELUDE + imports) for _ in range(args.repeats)))
            print(f"{name:<70}{cost:>7.2f}")


if __name__ == "__main__":
    main()
