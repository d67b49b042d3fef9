"""Durable writes: a failed write keeps the earlier file and names the file; a write killed
outright (SIGKILL, for real) leaves no file that looks finished, only a temporary that the
next workflow start removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from pipeline.io import remove_leftovers, write_bytes

ROOT = Path(__file__).resolve().parents[1]


def child(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True)


def test_a_write_over_the_file_size_limit_fails_clearly_and_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "models" / "weights.pt"
    write_bytes(target, b"earlier weights")
    proc = child("import resource\n"
                 "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # as `ulimit -f`\n"
                 "from pipeline.io import write_bytes\n"
                 "try:\n"
                 "    write_bytes('models/weights.pt', b'x' * 100_000)\n"
                 "except OSError as e:\n"
                 "    print(e)\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "models/weights.pt: could not write (File too large)" in proc.stdout
    assert target.read_bytes() == b"earlier weights"
    assert [p.name for p in target.parent.iterdir()] == ["weights.pt"]


def test_a_write_killed_midway_leaves_nothing_that_looks_finished(tmp_path):
    proc = child("import os, signal\n"
                 "from pipeline.io import atomic_path\n"
                 "with atomic_path('results/metrics.json') as tmp:\n"
                 "    tmp.write_bytes(b'{\"acc\": 0.')\n"
                 "    os.kill(os.getpid(), signal.SIGKILL)\n", tmp_path)
    assert proc.returncode == -signal.SIGKILL
    results = tmp_path / "results"
    assert not (results / "metrics.json").exists()
    (leftover,) = results.iterdir()
    assert leftover.name.startswith(".metrics.json.") and leftover.name.endswith(".tmp")
    (results / "kept.json").write_text("{}")
    assert remove_leftovers([results, tmp_path / "absent"]) == [leftover]
    assert [p.name for p in results.iterdir()] == ["kept.json"]
