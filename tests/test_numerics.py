"""The numeric mode: applied before numeric libraries load, ambient values overridden and
recorded, misuse refused, and replicate's explanation of a difference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config, numerics

ROOT = Path(__file__).resolve().parents[1]


def child(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ONEDNN", "MKL", "NPY", "NUMBA", "OPENBLAS", "PIPELINE_"))}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True)


def test_apply_overrides_an_ambient_setting_and_records_it():
    proc = child("import os; from pipeline import numerics; numerics.apply('portable', 1);"
                 "print(os.environ['MKL_CBWR'], os.environ['PIPELINE_NUMERICS_OVERRIDDEN'])",
                 MKL_CBWR="AUTO")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["AVX2,STRICT", '{"MKL_CBWR":', '"AUTO"}']


def test_apply_after_numpy_was_imported_is_refused():
    proc = child("import numpy; from pipeline import numerics; numerics.apply('portable', 1)")
    assert proc.returncode != 0
    assert "numpy imported before the numeric mode was set up" in proc.stderr


def test_native_below_a_portable_parent_drops_the_parents_pins_and_restores_the_users():
    proc = child("import os; from pipeline import numerics; numerics.export_env('portable', 1);"
                 "numerics.export_env('native', 1);"
                 "print(os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset'), os.environ['MKL_CBWR'],"
                 "os.environ['NPY_DISABLE_CPU_FEATURES'])",
                 MKL_CBWR="AUTO", NPY_DISABLE_CPU_FEATURES="AVX512F")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["unset", "AUTO", "AVX512F"]


def test_native_mode_leaves_the_libraries_their_choice():
    proc = child("import os; from pipeline import numerics; numerics.apply('native', 1);"
                 "print(os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset'), os.environ['MKL_CBWR'])",
                 MKL_CBWR="AUTO")
    assert proc.stdout.split() == ["unset", "AUTO"]


def test_a_job_command_runs_in_the_mode_params_asks_for(tmp_path):
    cfg = config.read_yaml(ROOT / "params.yaml")
    cfg["numerics"] = "native"
    params = tmp_path / "native.yaml"
    params.write_text(json.dumps(cfg))
    proc = child("import os; from pipeline.numerics import apply_configured; apply_configured();"
                 "print(os.environ['PIPELINE_NUMERICS'])", PIPELINE_PARAMS=str(params))
    assert proc.stdout.strip() == "native"


def test_params_reject_an_unknown_mode():
    cfg = config.read_yaml(ROOT / "params.yaml")
    cfg["numerics"] = "fast"
    with pytest.raises(config.ConfigError, match="numerics: .fast. is not one of .*portable"):
        config.validate(cfg, "params.yaml")


def test_portable_mode_refuses_a_cpu_without_avx2(monkeypatch):
    # A mock: no machine here lacks AVX2, and the refusal must be tested somewhere.
    monkeypatch.setattr(numerics, "cpu_flags", lambda: {"sse2", "avx"})
    with pytest.raises(numerics.NumericsError, match="lacks avx2, fma, f16c"):
        numerics._check_cpu()


RUN = {"numerics.mode": "portable", "numerics.torch.cpu_capability": "AVX2",
       "numerics.numpy.dispatch": "AVX2", "numerics.openblas": "libscipy_openblas:Haswell",
       "numerics.mkl_vendor_shim": "True", "env.lib.torch": "2.13.0", "env.cpu": "Intel Xeon"}


def test_explain_is_silent_when_nothing_that_moves_bits_differs():
    assert numerics.explain(RUN, {**RUN, "env.cpu": "AMD EPYC"}) == []


def test_explain_names_mode_capability_and_library_version():
    native = {**RUN, "numerics.mode": "native", "numerics.torch.cpu_capability": "AVX512",
              "env.lib.torch": "2.14.1", "env.cpu": "AMD EPYC"}
    causes = numerics.explain(native, RUN)
    assert "numeric mode differs: run 'native', re-run 'portable'" in causes
    assert "ATen CPU capability differs: run 'AVX512', re-run 'AVX2'" in causes
    assert "library version differs: torch 2.14.1 in the run, 2.13.0 in the re-run" in causes
    assert any("native numeric mode on 'AMD EPYC'" in c for c in causes)


def test_explain_names_the_gpu_difference_of_a_cuda_run_re_run_elsewhere():
    cuda = {**RUN, "env.device": "cuda", "env.gpu": "NVIDIA H200", "env.gpu_driver": "580.1",
            "env.cuda": "13.0", "env.cudnn": "91900", "env.torch": "2.11.0+cu130"}
    on_cpu = {**RUN, "env.device": "cpu", "env.gpu": "none", "env.gpu_driver": "none",
              "env.cuda": "None", "env.cudnn": "None", "env.torch": "2.11.0+cu130"}
    [cause] = numerics.explain(cuda, on_cpu)
    assert cause.startswith("the run was made on cuda, the re-run on cpu")
    assert "GPU 'NVIDIA H200' in the run, 'none' in the re-run" in cause
    assert "cuDNN '91900' in the run, 'None' in the re-run" in cause
    assert "torch" not in cause.split(": ", 1)[1]  # the same torch: not named
    assert numerics.explain(cuda, {**cuda, "env.cpu": "AMD EPYC"}) == []


def test_replicate_reruns_with_the_numeric_settings_the_run_recorded():
    """A native run re-run from a portable shell must not inherit this shell's pins."""
    from pipeline.replicate import rerun_env

    shell = {"PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2,STRICT",
             "PIPELINE_NUMERICS": "portable", "PIPELINE_PARAMS": "overlay.yaml"}
    recorded = {"numerics.env.MKL_CBWR": "unset", "numerics.env.ONEDNN_MAX_CPU_ISA": "unset",
                "numerics.env.NUMBA_CPU_NAME": "skylake-avx512", "numerics.mode": "native",
                "numerics.env.NOT_OURS": "x"}
    assert rerun_env(shell, recorded) == {"PATH": "/bin", "NUMBA_CPU_NAME": "skylake-avx512"}
