"""Golden hashes: small fixed jobs through the real training code give the committed bytes
on whatever machine runs this (CI runs on Intel and AMD CPUs), in portable numeric mode.

A failing ``kernels.<library>`` entry names the library whose code path moved; the training
jobs (autoencoder, k-means, N2D, the two taggers) show what reaches a result. The jobs read
params.yaml's defaults, so a deliberate change of code or defaults that changes results
updates the hashes (`python -m pipeline golden > tests/golden_hashes.json`, said in the
commit); a new machine never does: that is the bug this test exists for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config, numerics

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "golden_hashes.json").read_text())
PINNED = {k for settings in numerics.PORTABLE.values() for k in settings}


def clean_env() -> dict[str, str]:
    """This environment without any variable the numeric mode sets or removes."""
    drop = PINNED | set(numerics.REMOVED) | set(numerics.THREAD_VARS) | {
        numerics.MODE_VAR, numerics.OVERRIDDEN_VAR, "PIPELINE_PARAMS"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def golden(env: dict[str, str], *jobs: str, device: str = "cpu") -> subprocess.Popen:
    """``python -m pipeline golden`` in a fresh process (all jobs when none is named)."""
    args = [a for job in jobs for a in ("--job", job)]
    return subprocess.Popen([sys.executable, "-m", "pipeline", "golden", "--device", device,
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict[str, str]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def test_golden_jobs_give_the_committed_bytes_with_and_without_an_ambient_avx2_setting():
    ambient = {**clean_env(), "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    runs = {"nothing set": golden(clean_env()), "AVX2 variables set": golden(ambient)}
    for label, proc in runs.items():  # started together: two cores, two processes
        got = result(proc)
        moved = {job: got.get(job) for job in GOLDEN if got.get(job) != GOLDEN[job]}
        assert not moved, (
            f"{label}: on this CPU ({numerics.cpu_vendor()}) these golden jobs gave other "
            f"bytes than committed: {sorted(moved)}. A kernels.<library> entry names the "
            "library that took another code path (see docs/reproduce.md, 'Numerics').")


def test_ambient_values_cannot_steer_a_portable_run():
    """Variables that would pick other kernels are overridden: same bytes as committed."""
    env = {**clean_env(), "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX", "ATEN_CPU_CAPABILITY":
           "default", "MKL_CBWR": "AUTO", "OPENBLAS_CORETYPE": "Prescott",
           "NUMBA_CPU_NAME": "generic", "NPY_DISABLE_CPU_FEATURES": "AVX2"}
    got = result(golden(env, "kernels"))
    assert got == {k: v for k, v in GOLDEN.items() if k.startswith("kernels.")}


@pytest.mark.skipif("avx512f" not in numerics.cpu_flags(), reason="needs an AVX-512 CPU")
def test_native_mode_takes_other_code_paths_on_an_avx512_cpu(tmp_path):
    """The pinning is not a no-op: left to pick, MKL, ATen and NumPy choose AVX-512 here."""
    params = tmp_path / "params.yaml"
    cfg = {**config.read_yaml(ROOT / config.PARAMS_FILE), "numerics": "native"}
    params.write_text(json.dumps(cfg))
    got = result(golden({**clean_env(), "PIPELINE_PARAMS": str(params)}, "kernels"))
    moved = {k for k in got if got[k] != GOLDEN[k]}
    assert {"kernels.MKL gemm", "kernels.ATen", "kernels.NumPy"} <= moved
