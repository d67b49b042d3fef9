"""Compare two runs' output files byte for byte: the device checks' verdict.

    python benchmarks/compare_outputs.py RUN1 RUN2 OUT.json FOLDER [FOLDER ...]

Every file under the FOLDERs (relative to each run's root) is hashed; run.json (the MLflow
run id) is left out and history.json is hashed without its ``*_seconds`` timings, the two
things that differ on every run. Prints how many files both runs wrote, those that differ,
and how many only one wrote (a run stopped early); OUT.json holds every sha256 and names.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def digests(root: Path, folders: list[str]) -> dict[str, str]:
    files = {}
    for top in folders:
        for f in sorted((root / top).rglob("*")):
            if not f.is_file() or f.name == "run.json":
                continue
            data = f.read_bytes()
            if f.name == "history.json":
                data = json.dumps({k: v for k, v in json.loads(data).items()
                                   if not k.endswith("_seconds")}, sort_keys=True).encode()
            files[str(f.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return files


def main() -> None:
    one, two, out, *folders = sys.argv[1:]
    first, second = digests(Path(one), folders), digests(Path(two), folders)
    both = first.keys() & second.keys()
    differ = sorted(f for f in both if first[f] != second[f])
    alone = sorted(first.keys() ^ second.keys())
    Path(out).write_text(json.dumps({"files": first, "differ": differ, "only_one": alone},
                                    indent=1))
    print(f"outputs: {len(both)} files written by both runs, differing: {differ}; "
          f"{len(alone)} written by one run only")


if __name__ == "__main__":
    main()
