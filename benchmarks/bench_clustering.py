"""Seconds per autoencoder epoch on this machine, for every clustering data set in a profile.

    python benchmarks/bench_clustering.py [--params params.yaml]
        [--overlay configs/paper-mnist-test.yaml] [--epochs 3] [--root .]

Each data set is timed with the autoencoder hp of the profile that declares it: the
base file's data sets (digits) with the base hp, the overlay's (MNIST-test) with the
merged hp. Layer-wise pretraining is skipped: this times one end-to-end epoch. CPU time
(all threads) is printed next to wall time: on a shared machine the wall time mostly
measures the other jobs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.numerics import apply_configured

apply_configured()  # params.yaml's numeric mode, before numpy and torch load

import torch
import yaml

from pipeline.data.clustering import load_clustering_dataset
from pipeline.seeding import select_device
from pipeline.train.clustering import pretrain_autoencoder


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``clustering.datasets`` of the overlay replaces the base's."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "datasets":
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def time_epochs(
    name: str,
    entry: Mapping[str, Any],
    root: Path,
    ae_hp: Mapping[str, Any],
    epochs: int,
    device: torch.device,
) -> None:
    x, _ = load_clustering_dataset(name, entry, root)
    hp = {**ae_hp, "epochs": epochs, "layerwise_epochs": 0}
    stamps = [(time.perf_counter(), time.process_time())]
    pretrain_autoencoder(
        x,
        hp,
        0,
        device,
        lambda metrics, step: stamps.append((time.perf_counter(), time.process_time())),
    )
    wall = [b[0] - a[0] for a, b in zip(stamps, stamps[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:], strict=False)]
    print(
        f"{name:12s} n={x.shape[0]:6d} d={x.shape[1]:4d} dims={hp['dims']} "
        f"batch={hp['batch_size']} {hp['optimizer']}: "
        f"{statistics.median(wall):.3f} s/epoch wall, {statistics.median(cpu):.3f} s/epoch CPU "
        f"(medians of {epochs}; first epoch {wall[0]:.3f} s wall)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--overlay", type=Path, default=Path("configs/paper-mnist-test.yaml"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="directory that data set paths are relative to (project root)",
    )
    args = parser.parse_args()
    base = yaml.safe_load(args.params.read_text())
    profiles = [base]
    if args.overlay and args.overlay.exists():
        profiles.append(merge(base, yaml.safe_load(args.overlay.read_text())))
    device = select_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    for profile in profiles:
        clustering = profile["clustering"]
        for name, entry in clustering["datasets"].items():
            time_epochs(name, entry, args.root, clustering["autoencoder"], args.epochs, device)


if __name__ == "__main__":
    main()
