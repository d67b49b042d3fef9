"""One place for randomness and determinism: every job seeds through here.

Same seed, same code, same data, same hardware must give byte-identical weights,
predictions and metrics, so this module also switches on PyTorch's deterministic
algorithms and records the environment a result was produced in.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
from importlib import metadata

import numpy as np

# Must be set before CUDA initialises; harmless on CPU.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402


def deterministic_torch() -> None:
    """Deterministic kernels only: an op without one fails loudly instead of varying.

    Deterministic mode also fills every fresh tensor with NaN, a guard against ops that
    read memory they never wrote. None of ours does (the golden test pins the bytes with
    the guard off), and the fill took 25% of a tagger's training time, so it is off.

    The flag is set on torch's eager core directly: ``torch.use_deterministic_algorithms``
    also imports the inductor compiler to set its copy of the flag, 1 s in every job, and
    nothing here compiles.

    On CUDA, TF32 is off for matrix products and cuDNN (convolutions, LSTMs): deterministic
    either way, but TF32 rounds inputs to 10 mantissa bits, and the recipes are fp32.
    """
    torch._C._set_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


NO_DETERMINISTIC_KERNEL = " does not have a deterministic implementation"


def nondeterministic_op(error: RuntimeError) -> str | None:
    """The one-line refusal for torch's error on an op without a deterministic kernel (on
    CUDA: index_add with some dtypes, some pooling backwards...), naming the op and the
    setting; None for any other error."""
    message = str(error)
    if NO_DETERMINISTIC_KERNEL not in message:
        return None
    op = message.split(NO_DETERMINISTIC_KERNEL)[0].strip()
    return (f"{op} has no deterministic kernel on this device, and every job runs with "
            "torch.use_deterministic_algorithms(True) so that a rerun gives the same bytes: run "
            "this job with `device: cpu` (params.yaml), where it is deterministic, or replace "
            "the op (docs/reproduce.md, 'GPU')")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    deterministic_torch()
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def set_threads(n: int) -> None:
    """Fix the CPU thread count: float sums, and so the last bits, depend on it.

    Snakemake sets OMP_NUM_THREADS to a rule's threads; setting torch's count from the
    configuration makes a job give the same bytes inside and outside Snakemake.
    """
    torch.set_num_threads(n)


def numpy_rng(seed: int, *stream: int | str) -> np.random.Generator:
    """An independent NumPy generator for one purpose (e.g. ``numpy_rng(seed, "split")``)."""
    words = [seed] + [int(hashlib.sha256(str(s).encode()).hexdigest()[:8], 16) for s in stream]
    return np.random.default_rng(words)


def select_device(preference: str = "auto") -> torch.device:
    """'auto' takes CUDA when present, else the CPU."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def determinism_flags() -> dict[str, str]:
    return {
        "torch.use_deterministic_algorithms": str(torch.are_deterministic_algorithms_enabled()),
        "cudnn.deterministic": str(torch.backends.cudnn.deterministic),
        "cudnn.benchmark": str(torch.backends.cudnn.benchmark),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
        "torch.num_threads": str(torch.get_num_threads()),
        "fill_uninitialized_memory": str(torch.utils.deterministic.fill_uninitialized_memory),
        "cuda.matmul.allow_tf32": str(torch.backends.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": str(torch.backends.cudnn.allow_tf32),
    }


def gpu_driver() -> str:
    """The NVIDIA driver's version (torch does not report it), or "unknown"."""
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0].strip() if out.strip() else "unknown"


def gpu_key(device: torch.device) -> str:
    """What CUDA results are bit-identical across: GPU model, driver, CUDA, cuDNN, torch
    (the fingerprint's fields, as ``numerics.GPU_KEY`` compares them in ``replicate``)."""
    fp = fingerprint(device)
    return (f"{fp['gpu']} | driver {fp['gpu_driver']} | CUDA {fp['cuda']} | "
            f"cuDNN {fp['cudnn']} | torch {fp['torch']}")


def _cpu_model() -> str:
    from pipeline.numerics import cpuinfo

    return cpuinfo("model name") or platform.processor() or platform.machine()


def _installed_packages_sha256() -> str:
    """Hash of every installed distribution and version: ``pip freeze`` without the subprocess."""
    dists = sorted({f"{d.metadata['Name']}=={d.version}".lower() for d in metadata.distributions()})
    return hashlib.sha256("\n".join(dists).encode()).hexdigest()


LIBRARIES = ("torch", "numpy", "scipy", "scikit-learn", "pandas", "seqeval", "mlflow", "dvc",
             "snakemake", "label-studio-sdk")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def fingerprint(device: torch.device) -> dict[str, str]:
    """The environment a result depends on; two runs compare equal only on equal hardware."""
    fp = {
        "python": platform.python_version(),
        "os": platform.platform(),
        "cpu": _cpu_model(),
        "pip_freeze_sha256": _installed_packages_sha256(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "none",
        "gpu_driver": gpu_driver() if device.type == "cuda" else "none",
    }
    fp.update({f"lib.{k}": v for k, v in library_versions().items()})
    return fp
