"""Markdown tables from tagging_experiment.py records: per seed, and mean +- std per variant.

    python benchmarks/tagging_table.py runs/*.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict


def main(paths: list[str]) -> None:
    runs = sorted((json.load(open(p)) for p in paths), key=lambda r: (r["variant"], r["seed"]))
    print("| variant | seed | dev UPOS acc | best epoch | epochs run | s/epoch | sent/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    by_variant = defaultdict(list)
    for r in runs:
        by_variant[r["variant"]].append(r)
        print(f"| {r['variant']} | {r['seed']} | {100 * r['dev_accuracy']:.2f} | "
              f"{r['best_epoch']} | {r['epochs_run']} | {r['mean_epoch_seconds']:.0f} | "
              f"{r['inference_sentences_per_s']:.0f} |")
    print()
    print("| variant | seeds | dev UPOS acc mean +- std | best epoch (mean) |")
    print("| --- | --- | --- | --- |")
    for variant, rs in by_variant.items():
        accs = [100 * r["dev_accuracy"] for r in rs]
        std = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        print(f"| {variant} | {len(rs)} | {statistics.mean(accs):.2f} +- {std:.2f} | "
              f"{statistics.mean(r['best_epoch'] for r in rs):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
