"""Numeric mode: which code path the numeric libraries take, fixed before they load.

oneDNN, MKL, ATen's vectorised kernels, numba, NumPy and OpenBLAS each pick kernels for
the CPU at hand, so the same job gives other bits, and after training other decisions, on
another CPU. ``numerics: portable`` (params.yaml, the default) pins each of them to its
AVX2 code path, which every x86-64 CPU with AVX2 and FMA (Intel since 2013, AMD since
2015) runs alike; ``native`` lets them pick (faster on AVX-512 CPUs, results tied to the
CPU). docs/reproduce.md says why each setting is there and what it was measured to change.

``apply`` must run before numpy, torch, scipy or numba is imported: every entry point calls
it first (``python -m pipeline``, ``python -m annotation``, the Snakefile, tests/conftest.py,
benchmarks/). It sets environment variables, so every process started from there inherits
the mode; ambient values of the pinned variables are overridden (and recorded as such).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("portable", "native")
MODE_VAR = "PIPELINE_NUMERICS"  # the mode this process tree was set up for
OVERRIDDEN_VAR = "PIPELINE_NUMERICS_OVERRIDDEN"

# Library -> {variable: value}. The values are each library's documented AVX2 code path.
PORTABLE: dict[str, dict[str, str]] = {
    "oneDNN": {  # convolutions (the char CNN): no AVX-512/AMX kernels, no implicit bf16
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "DNNL_MAX_CPU_ISA": "AVX2",
        "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",
    },
    "ATen": {"ATEN_CPU_CAPABILITY": "avx2"},  # torch's own vectorised kernels (Sleef)
    "MKL": {  # torch's BLAS and vector maths: conditional numerical reproducibility
        "MKL_CBWR": "AVX2,STRICT",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "MKL_DYNAMIC": "FALSE",
    },
    "numba": {  # UMAP and pynndescent are compiled for this target, not the host CPU
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+crc32,+cx16,+cx8,+f16c,"
                              "+fma,+fxsr,+lzcnt,+mmx,+movbe,+popcnt,+sahf,+sse,+sse2,+sse3,"
                              "+sse4.1,+sse4.2,+ssse3,+xsave",
        "NUMBA_DISABLE_INTEL_SVML": "1",
        "NUMBA_NUM_THREADS": "1",
    },
    "NumPy": {"NPY_ENABLE_CPU_FEATURES": "SSSE3 SSE41 POPCNT SSE42 AVX F16C FMA3 AVX2"},
    "OpenBLAS": {  # NumPy's and SciPy's BLAS (scikit-learn goes through SciPy's)
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_NUM_THREADS": "1",
    },
    "OpenMP": {"OMP_DYNAMIC": "FALSE"},
}
# Ambient variables that would change a portable result and that portable mode removes.
REMOVED = ("NPY_DISABLE_CPU_FEATURES", "NUMBA_DISABLE_JIT", "NUMBA_OPT", "NUMBA_LOOP_VECTORIZE",
           "NUMBA_SLP_VECTORIZE", "MKL_DEBUG_CPU_TYPE", "MKL_VML_MODE")
# Thread counts follow params.yaml's `threads` (torch.set_num_threads sets them too).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
NUMERIC_MODULES = ("numpy", "torch", "scipy", "sklearn", "numba")
REQUIRED_CPU_FLAGS = ("avx2", "fma", "f16c")

# MKL takes its generic (SSE) branch on CPUs whose vendor is not Intel, whatever MKL_CBWR
# says: its documentation states this, and an AMD CPU gave other bits for small matrix
# products and for exp/log/sqrt. MKL asks itself through this exported function; defining
# it first in the global symbol scope makes every AVX2 CPU take the same AVX2 branch.
# On Intel CPUs it changes nothing (the function returns 1 there already).
_MKL_VENDOR_SHIM = b"int mkl_serv_intel_cpu_true(void) { return 1; }\n"


_shim_loaded = False


class NumericsError(RuntimeError):
    """The numeric mode cannot be set up as asked; the message says what to do."""


def applied_env(mode: str, threads: int) -> tuple[dict[str, str], tuple[str, ...]]:
    """The variables a mode sets, and those it removes."""
    if mode not in MODES:
        raise NumericsError(f"numerics: must be one of {MODES}, got {mode!r}")
    env = {MODE_VAR: mode, **{v: str(threads) for v in THREAD_VARS}}
    if mode == "native":
        return env, ()
    for settings in PORTABLE.values():
        env.update(settings)
    return env, REMOVED


def export_env(mode: str, threads: int) -> set[str]:
    """Set the mode's variables for processes started from here; return those changed.

    Ambient values of pinned variables are overridden, and listed in
    PIPELINE_NUMERICS_OVERRIDDEN so that each run records what it overrode.
    """
    env, removed = applied_env(mode, threads)
    if mode == "native" and os.environ.get(MODE_VAR) == "portable":
        # A portable parent's pins are ours, not the user's: drop them, restore what they hid.
        for key in {k for settings in PORTABLE.values() for k in settings}:
            os.environ.pop(key, None)
        os.environ.update(json.loads(os.environ.pop(OVERRIDDEN_VAR, "{}")))
    changed = {k for k, v in env.items() if os.environ.get(k) != v}
    changed |= {k for k in removed if k in os.environ}
    overridden = {k: os.environ[k] for k in sorted(changed) if k in os.environ and k != MODE_VAR}
    if overridden:
        os.environ[OVERRIDDEN_VAR] = json.dumps(overridden)
    os.environ.update(env)
    for key in removed:
        os.environ.pop(key, None)
    return changed - {MODE_VAR}


def apply(mode: str, threads: int) -> None:
    """Set up this process (and its children) before any numeric library loads."""
    loaded = [m for m in NUMERIC_MODULES if m in sys.modules]
    changed = export_env(mode, threads)
    late_shim = mode == "portable" and not _shim_loaded and "torch" in sys.modules
    if loaded and (changed or late_shim):
        raise NumericsError(
            f"numerics: {', '.join(loaded)} imported before the numeric mode was set up "
            f"({', '.join(sorted(changed)) or 'MKL vendor shim'} would not take effect): call "
            "pipeline.numerics.apply() first")
    if mode == "portable":
        _check_cpu()
        _load_mkl_vendor_shim()


def apply_configured() -> str:
    """Apply the mode params.yaml (or PIPELINE_PARAMS) asks for; return it."""
    from pipeline.config import load

    cfg = load()
    apply(cfg["numerics"], cfg["threads"])
    return cfg["numerics"]


def cpuinfo(field: str) -> str:
    """A field of /proc/cpuinfo for the first CPU ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> set[str]:
    return set(cpuinfo("flags").split())


def cpu_vendor() -> str:
    return cpuinfo("vendor_id") or platform.processor() or "unknown"


def _check_cpu() -> None:
    if platform.machine() not in ("x86_64", "AMD64"):
        raise NumericsError(f"numerics: portable pins x86-64 code paths; this is a "
                            f"{platform.machine()} machine: set numerics: native")
    missing = [f for f in REQUIRED_CPU_FLAGS if f not in cpu_flags()]
    if missing:
        raise NumericsError(f"numerics: portable needs a CPU with AVX2 and FMA; this one lacks "
                            f"{', '.join(missing)}: set numerics: native")


def _shim_path() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha256(_MKL_VENDOR_SHIM).hexdigest()[:12]
    return cache / "replicable-pipeline" / f"mkl-vendor-{tag}.so"


def _load_mkl_vendor_shim() -> None:
    """Build (once, with the system C compiler) and load the shim, before torch loads MKL."""
    path = _shim_path()
    if not path.exists():
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise NumericsError("numerics: portable needs a C compiler once (cc or gcc) to "
                                "build a 1-line shim for MKL; install one or set numerics: native")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            src, out = Path(tmp) / "shim.c", Path(tmp) / "shim.so"
            src.write_bytes(_MKL_VENDOR_SHIM)
            proc = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(src)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise NumericsError(f"numerics: building the MKL shim failed: {proc.stderr}")
            os.replace(out, path)
    global _shim_loaded
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    _shim_loaded = True


def describe() -> dict[str, str]:
    """What the numeric libraries actually do in this process (MLflow tags ``numerics.*``)."""
    import numpy as np
    import torch
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    from threadpoolctl import threadpool_info

    env, removed = applied_env(os.environ.get(MODE_VAR, "native"), torch.get_num_threads())
    keys = sorted({*env, *removed, *(k for s in PORTABLE.values() for k in s)} - {MODE_VAR})
    info = {
        "mode": os.environ.get(MODE_VAR, "unset"),
        "cpu.vendor": cpu_vendor(),
        "cpu.avx2": str("avx2" in cpu_flags()),
        "cpu.avx512f": str("avx512f" in cpu_flags()),
        "torch.cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy.dispatch": " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f)),
        "openblas": " ".join(sorted({f"{p['prefix']}:{p.get('architecture')}"
                                     for p in threadpool_info()
                                     if p["internal_api"] == "openblas"})),
        "mkl_vendor_shim": str(_shim_loaded),
        "overridden": os.environ.get(OVERRIDDEN_VAR, ""),
        "versions": f"torch {torch.__version__}, numpy {np.__version__}",
    }
    info.update({f"env.{k}": os.environ.get(k, "unset") for k in keys})
    return info


def explain(recorded: dict[str, str], here: dict[str, str]) -> list[str]:
    """Why two runs of one job can differ in their bits, from their MLflow tags."""
    def get(tags: dict[str, str], key: str) -> str:
        return tags.get(key, "unrecorded")

    causes = []
    for key, what in (("numerics.mode", "numeric mode"),
                      ("numerics.torch.cpu_capability", "ATen CPU capability"),
                      ("numerics.numpy.dispatch", "NumPy SIMD dispatch"),
                      ("numerics.openblas", "OpenBLAS core"),
                      ("numerics.mkl_vendor_shim", "MKL vendor shim")):
        if get(recorded, key) != get(here, key):
            causes.append(f"{what} differs: run {get(recorded, key)!r}, "
                          f"re-run {get(here, key)!r}")
    for key in sorted(k for k in {*recorded, *here} if k.startswith("env.lib.")):
        if recorded.get(key) != here.get(key):
            causes.append(f"library version differs: {key[len('env.lib.'):]} "
                          f"{recorded.get(key)} in the run, {here.get(key)} in the re-run")
    if get(recorded, "numerics.mode") != "portable" and get(recorded, "env.cpu") != get(
            here, "env.cpu"):
        causes.append(f"the run was made in {get(recorded, 'numerics.mode')} numeric mode on "
                      f"{get(recorded, 'env.cpu')!r}, the re-run is on {get(here, 'env.cpu')!r}: "
                      "outside portable mode, bits hold only on the same CPU")
    devices = get(recorded, "env.device"), get(here, "env.device")
    if any(d.startswith("cuda") for d in devices):
        moved = [f"{what} {get(recorded, key)!r} in the run, {get(here, key)!r} in the re-run"
                 for key, what in GPU_KEY if get(recorded, key) != get(here, key)]
        if moved:
            causes.append(f"the run was made on {devices[0]}, the re-run on {devices[1]}; on "
                          "CUDA, bits hold only on the same GPU model, driver, CUDA, cuDNN and "
                          "torch: " + ", ".join(moved))
    return causes


# The fingerprint tags (seeding.fingerprint) that CUDA results are bit-identical across.
GPU_KEY = (("env.gpu", "GPU"), ("env.gpu_driver", "driver"), ("env.cuda", "CUDA"),
           ("env.cudnn", "cuDNN"), ("env.torch", "torch"))
