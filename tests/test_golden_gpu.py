"""Golden hashes on a CUDA GPU: the golden jobs (with DEC, IDEC and DCN) trained on the GPU
give the committed bytes, twice, each time in a fresh process.

Bits on CUDA hold for one GPU model, driver, CUDA, cuDNN and torch version, not across them,
so ``tests/golden_hashes_gpu.json`` keeps one set of hashes per such key
(``pipeline.seeding.gpu_key``). Where no GPU is present, or one whose key has no recorded
hashes, the test is skipped and says why; record a new key's hashes with
``python -m pipeline golden --device cuda`` run twice (benchmarks/gpu_check.sh does it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.seeding import gpu_key
from tests.test_golden import clean_env, golden, result

pytestmark = pytest.mark.gpu

RECORDED = json.loads((Path(__file__).parent / "golden_hashes_gpu.json").read_text())


@pytest.fixture(scope="module")
def key() -> str:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the GPU golden hashes are checked only on a GPU")
    here = gpu_key(torch.device("cuda"))
    if here not in RECORDED:
        pytest.skip(f"no GPU golden hashes recorded for {here!r} (recorded: "
                    f"{sorted(RECORDED)}); bits on CUDA hold only for one such key")
    return here


def test_gpu_golden_jobs_give_the_recorded_bytes_twice_in_fresh_processes(key):
    procs = [golden(clean_env(), device="cuda") for _ in range(2)]  # at once, on one GPU
    first, second = (result(proc) for proc in procs)
    differ = sorted(job for job in first if first[job] != second.get(job))
    assert not differ, f"two runs on {key} differ in {differ}"
    moved = sorted(job for job in RECORDED[key] if first.get(job) != RECORDED[key][job])
    assert not moved, f"on {key} these golden jobs gave other bytes than recorded: {moved}"
