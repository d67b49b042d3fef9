"""Determinism settings every job runs with, and the refusal of an op that has none."""

from __future__ import annotations

import pytest
import torch

from pipeline import cli, seeding


def test_jobs_run_deterministic_fp32_and_record_each_flag():
    seeding.deterministic_torch()
    flags = seeding.determinism_flags()
    assert flags["torch.use_deterministic_algorithms"] == "True"
    assert flags["cudnn.deterministic"] == "True" and flags["cudnn.benchmark"] == "False"
    assert flags["cuda.matmul.allow_tf32"] == "False" and flags["cudnn.allow_tf32"] == "False"
    assert flags["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert seeding.fingerprint(torch.device("cpu"))["gpu_driver"] == "none"


def test_an_op_without_a_deterministic_kernel_is_refused_in_one_line(monkeypatch, capsys):
    """No stage of ours calls such an op; a real one stands in, run where a stage runs:
    torch's put_ without accumulation has no deterministic kernel on the CPU either."""
    def stage(args):
        seeding.deterministic_torch()
        torch.zeros(3).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))

    monkeypatch.setattr(cli, "_run", stage)
    assert cli.main(["report"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: put_ has no deterministic kernel on this device")
    assert "torch.use_deterministic_algorithms(True)" in err and "device: cpu" in err


def test_other_runtime_errors_keep_their_traceback(monkeypatch):
    def stage(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_run", stage)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["report"])
