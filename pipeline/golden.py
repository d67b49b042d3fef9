"""Golden jobs: small fixed runs of the real training code whose bytes must not move.

Each job trains or fits through the same functions the stages call, on committed or
bundled data, and returns the sha256 of what it produced (weights, predictions). The
hashes committed in ``tests/golden_hashes.json`` are checked by ``tests/test_golden.py``
on whatever machine runs the tests: that is the standing proof of portable numerics.

On a CUDA GPU (``--device cuda``) the same jobs, with DEC, IDEC and DCN, train on the GPU;
bits hold per GPU model, driver, CUDA, cuDNN and torch version (``seeding.gpu_key``), so
their hashes are kept per such key in ``tests/golden_hashes_gpu.json`` and checked by
``tests/test_golden_gpu.py`` where that key is present.

``python -m pipeline golden`` prints the hashes as JSON (``--job`` picks some).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import numpy as np

from pipeline.config import load

GOLDEN_SEED = 0
EWT_DEV = "data/corpora/en_ewt-ud-dev.conllu.xz"


def digest(arrays: Mapping[str, Any]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name].detach().cpu().numpy()
                                 if hasattr(arrays[name], "detach") else arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _no_log(metrics: Mapping[str, float], step: int | None = None) -> None:
    pass


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from pathlib import Path

    from pipeline.data.clustering import load_clustering_dataset

    return load_clustering_dataset("digits", {"format": "sklearn_digits"}, Path("."))


@cache
def _autoencoder(device: str):
    import torch

    from pipeline.train.clustering import pretrain_autoencoder

    hp = {**load()["clustering"]["autoencoder"], "epochs": 5}
    x, _ = _digits()
    model, _ = pretrain_autoencoder(x, hp, GOLDEN_SEED, torch.device(device), _no_log, (8, 8))
    return model


def autoencoder(device: str) -> str:
    """The default autoencoder, 5 epochs on digits (MKL GEMM, ATen kernels incl. the
    augmentation's grid sampling, Adam)."""
    return digest(_autoencoder(device).state_dict())


def _cluster(method: str, device: str, **budget: int) -> str:
    import torch

    from pipeline.train.clustering import fit_clustering

    x, y = _digits()
    hp = {**load()["clustering"]["methods"][method], **budget}
    ae = None if method == "kmeans" else _autoencoder(device)
    result = fit_clustering(method, x, y, 10, ae, hp, GOLDEN_SEED, torch.device(device), _no_log)
    return digest({"assignments": result.assignments, **result.state})


def kmeans(device: str) -> str:
    """scikit-learn k-means on the raw digits (OpenBLAS, scikit-learn's OpenMP code)."""
    return _cluster("kmeans", device)


def n2d(device: str) -> str:
    """N2D on the golden autoencoder: UMAP (numba, pynndescent) and a Gaussian mixture."""
    return _cluster("n2d", device)


def dec(device: str) -> str:
    """DEC on the golden autoencoder, 100 iterations (soft assignments, KL loss, SGD)."""
    return _cluster("dec", device, max_iter=100)


def idec(device: str) -> str:
    """IDEC: DEC's loss plus the reconstruction, 100 iterations."""
    return _cluster("idec", device, max_iter=100)


def dcn(device: str) -> str:
    """DCN, 2 epochs (reconstruction + k-means loss, centroid updates by count)."""
    return _cluster("dcn", device, epochs=2)


def _tagger(variant: str, epochs: int, device: str) -> str:
    import torch

    from pipeline.data.conllu import read_conllu
    from pipeline.stages.tagging import hyperparameters
    from pipeline.train.tagging import predict, train_tagger

    cfg = load()
    sentences = list(itertools.islice(read_conllu(EWT_DEV, aux=("xpos", "feats")), 300))
    train, dev = sentences[:200], sentences[200:]
    hp = {**hyperparameters(cfg, "ewt_pos_dev", variant), "max_epochs": epochs}
    bundle, _ = train_tagger(train, dev, "tags", hp, GOLDEN_SEED, torch.device(device), _no_log)
    tags = predict(bundle, dev, hp["eval_batch_size"])
    index = {t: i for i, t in enumerate(bundle.tags)}
    predicted = np.array([index[t] for s in tags for t in s], dtype=np.int64)
    return digest({**bundle.model.state_dict(), "predicted": predicted})


def tagger(device: str) -> str:
    """The char-CNN BiLSTM-CRF, one epoch on 200 EWT sentences; weights and predictions."""
    return _tagger("bilstm_cnn_crf", 1, device)


def tagger_deep(device: str) -> str:
    """The stronger variant (char BiLSTM, residual layers, Adam, XPOS/FEATS heads, label
    smoothing, word dropout), two epochs on the same sentences, their weights averaged."""
    return _tagger("deep", 2, device)


def tagger_fast(device: str) -> str:
    """The throughput variant (char CNN, lexical features, one BiLSTM layer, fused Adam,
    batches of 64), two epochs on the same sentences, their weights averaged."""
    return _tagger("fast", 2, device)


def active_learning(device: str) -> str:
    """Three rounds of the active-learning simulation (pipeline.stages.active_learning.choose)
    on 250 EWT sentences with the char-CNN BiLSTM-CRF (CRF scores and marginals), one
    epoch each: a random seed set, then BALD (seeded MC dropout), then MNLP spread over
    k-means clusters; the selections, the last weights and their predictions."""
    import math

    import torch

    from pipeline.data.conllu import read_conllu
    from pipeline.stages.active_learning import choose, labelled_split
    from pipeline.stages.tagging import hyperparameters
    from pipeline.train.tagging import predict, train_tagger

    cfg = load()
    sentences = list(itertools.islice(read_conllu(EWT_DEV), 300))
    pool, test = sentences[:250], sentences[250:]
    hp = {**hyperparameters(cfg, "ewt_pos_dev", "bilstm_cnn_crf"), "max_epochs": 1}
    total = sum(len(s.tokens) for s in pool)
    index = {s.id: i for i, s in enumerate(pool)}
    labelled: list[str] = []
    bundle = None
    for strategy, share in (("random", 0.1), ("bald", 0.2), ("mnlp_diverse", 0.3)):
        chosen = choose(strategy, bundle, pool, labelled, math.ceil(share * total),
                        GOLDEN_SEED, cfg["active_learning"]["query"])
        labelled += [c["id"] for c in chosen]
        train, dev = labelled_split([pool[index[i]] for i in labelled],
                                    cfg["tagging"]["split"]["dev"])
        bundle, _ = train_tagger(train, dev, "tags", hp, GOLDEN_SEED, torch.device(device),
                                 _no_log)
    tags = {t: i for i, t in enumerate(bundle.tags)}
    predicted = np.array([tags[t] for s in predict(bundle, test, 64) for t in s], dtype=np.int64)
    return digest({**bundle.model.state_dict(), "predicted": predicted,
                   "selected": np.array([index[i] for i in labelled], dtype=np.int64)})


def kernels(device: str) -> dict[str, str]:
    """One probe per dispatching library, on fixed inputs: a failing job names its library."""
    import numba
    import torch
    from scipy.linalg import blas

    f = torch.nn.functional
    g = torch.Generator().manual_seed(GOLDEN_SEED)
    rng = np.random.default_rng(GOLDEN_SEED)
    v = torch.randn(4099, 37, generator=g)
    gemm = [torch.randn(m, k, generator=g) @ torch.randn(k, n, generator=g)
            for m, k, n in ((10, 10, 10), (7, 100, 800), (256, 784, 500), (1797, 64, 500))]
    # Packed, as the tagger runs it: ATen's own LSTM (MKL GEMMs, ATen pointwise kernels).
    lstm = torch.nn.LSTM(20, 16, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for p in lstm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            torch.randn(4, 12, 20, generator=g), torch.tensor([12, 9, 5, 1]), batch_first=True)
        lstm_out = torch.nn.utils.rnn.pad_packed_sequence(lstm(packed)[0], batch_first=True)[0]
    m = rng.standard_normal((200, 64))

    @numba.njit(fastmath=True)
    def numba_probe(a):
        total = 0.0
        for x in a.ravel():
            total += np.exp(-x * x) * np.sqrt(abs(x))
        return total

    return {
        "MKL gemm": digest({str(i): r for i, r in enumerate(gemm)}),
        "MKL vector maths": digest({"exp": v.exp(), "log": v.abs().log(),
                                    "sqrt": v.abs().sqrt(), "erf": torch.erf(v)}),
        "oneDNN": digest({"conv1d": f.conv1d(torch.randn(100, 30, 17, generator=g),
                                             torch.randn(50, 30, 3, generator=g), padding=1)}),
        "ATen": digest({"tanh": v.tanh(), "sigmoid": v.sigmoid(), "softmax": v.softmax(1),
                        "sum": v.sum(0), "pow": (1 + v * v).pow(-1.5), "lstm": lstm_out}),
        "NumPy": digest({"exp": np.exp(m), "log": np.log(np.abs(m)), "sin": np.sin(m),
                         "argsort": np.argsort(rng.integers(0, 5, 1000))}),
        "OpenBLAS": digest({"numpy": m @ m.T, "scipy": blas.dgemm(1.0, m, m.T)}),
        "numba": digest({"probe": np.array([numba_probe(m)])}),
    }


Job = Callable[[str], str | dict[str, str]]
JOBS: dict[str, Job] = {
    "kernels": kernels, "autoencoder": autoencoder, "kmeans": kmeans, "n2d": n2d,
    "tagger": tagger, "tagger_deep": tagger_deep, "tagger_fast": tagger_fast,
    "active_learning": active_learning,
}
# On a GPU: no CPU kernel probes; the deep clustering methods, cheap there, join.
GPU_JOBS: dict[str, Job] = {
    **{k: v for k, v in JOBS.items() if k != "kernels"}, "dec": dec, "idec": idec, "dcn": dcn,
}


def run(names: list[str] | None = None, device: str = "cpu") -> dict[str, str]:
    """sha256 per job; the kernels job gives one per library (``kernels.<library>``).

    Runs as a pipeline job does: params.yaml's thread count, deterministic kernels."""
    from pipeline.seeding import deterministic_torch, set_threads

    jobs = GPU_JOBS if device.startswith("cuda") else JOBS
    unknown = sorted(set(names or []) - set(jobs))
    if unknown:
        raise ValueError(f"golden: no job {', '.join(unknown)} on {device}; "
                         f"jobs: {', '.join(jobs)}")
    set_threads(load()["threads"])
    deterministic_torch()
    out: dict[str, str] = {}
    for name in names or jobs:
        result = jobs[name](device)
        if isinstance(result, dict):
            out.update({f"{name}.{k}": h for k, h in result.items()})
        else:
            out[name] = result
    return out
