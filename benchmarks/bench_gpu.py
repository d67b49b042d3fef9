"""What determinism costs on a CUDA GPU: epoch times with the pipeline's deterministic
settings against PyTorch's fast, non-deterministic ones, measured in one run.

    python benchmarks/bench_gpu.py [--epochs 3]

Each setting runs in its own fresh process (``CUBLAS_WORKSPACE_CONFIG`` only takes effect
before cuBLAS starts), the two alternating ``--repeats`` times; each figure is the best epoch.

- deterministic: what every job runs with (``seeding.deterministic_torch``: deterministic
  algorithms, cuDNN deterministic without benchmark mode, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``)
- fast: none of those (cuDNN benchmark on, no workspace setting)

TF32 stays off in both, so the ratio is the price of determinism alone. Workloads: the paper
profile's autoencoder (784-500-500-2000-10, batch 256, Adam, its augmentation) on MNIST-test,
and a training epoch of the faithful tagger (``bilstm_cnn_crf``, batch 10) and of the deep one
(batch 32) on UD English-EWT train, through the trainers' own functions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = ("deterministic", "fast")
MNIST_PROFILE = "configs/paper-mnist-test.yaml"
TAGGING_PROFILE = "configs/paper-tagging.yaml"


def child(setting: str, epochs: int) -> dict[str, float]:
    """Epoch times (best of ``epochs``) under one setting, in this process."""
    from pipeline.numerics import apply_configured

    apply_configured()
    import torch

    from pipeline import seeding

    if setting == "deterministic":
        seeding.deterministic_torch()
    else:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)  # cuBLAS has not started yet
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    return {"autoencoder epoch, MNIST-test": autoencoder_epoch(device, epochs),
            **{f"{variant} epoch, EWT train": tagger_epoch(variant, device, epochs)
               for variant in ("bilstm_cnn_crf", "deep")}}


def autoencoder_epoch(device, epochs: int) -> float:
    from pipeline import config
    from pipeline.data.clustering import load_clustering_dataset
    from pipeline.train.clustering import pretrain_autoencoder

    cfg = config.load(overlays=[MNIST_PROFILE])
    x, _ = load_clustering_dataset("mnist_test", cfg["clustering"]["datasets"]["mnist_test"],
                                   Path("."))
    hp = {**cfg["clustering"]["autoencoder"], "epochs": epochs,
          "monitor": {**cfg["clustering"]["autoencoder"]["monitor"], "every": 0}}
    times: list[float] = []
    last = [time.perf_counter()]

    def stamp(metrics, step=None) -> None:  # called once per epoch, after its loss is read
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    pretrain_autoencoder(x, hp, 0, device, stamp, (28, 28))
    return min(times[1:] or times)  # the first epoch also starts CUDA


def tagger_epoch(variant: str, device, epochs: int) -> float:
    import numpy as np

    from pipeline import config
    from pipeline.data.conllu import read_conllu
    from pipeline.seeding import numpy_rng, seed_everything
    from pipeline.stages.tagging import hyperparameters
    from pipeline.train import tagging as T

    cfg = config.load(overlays=[TAGGING_PROFILE])
    hp = hyperparameters(cfg, "ud_ewt", variant)
    corpus = cfg["tagging"]["corpora"]["ud_ewt"]
    aux = corpus.get("aux", []) if hp["aux_weight"] else []
    train = read_conllu(corpus["train"], corpus["column"], aux)
    seed_everything(0)
    bundle = T.rebuild(*T.build_vocab(train, hp), {k: hp[k] for k in T.MODEL_KEYS},
                       T.aux_vocab(train, hp))
    model = bundle.model.to(device)
    data = T.encode(bundle, train, with_tags=True)
    lengths = np.array([len(w) for w in data.words])
    optimizer = T.make_optimizer(model.parameters(), hp)
    singletons = T.singleton_mask(bundle, train).to(device)
    rng = numpy_rng(0, "bench")
    best = float("inf")
    for _ in range(epochs):
        batches = T.equal_length_batches(lengths, hp["batch_size"], rng)
        start = time.perf_counter()
        T.train_epoch(model, data, batches, optimizer, singletons, hp)  # ends in a sync
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1, help="fresh processes per setting")
    ap.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs)))
        return
    import torch

    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    best: dict[str, dict[str, float]] = {s: {} for s in SETTINGS}
    for _ in range(args.repeats):
        for setting in SETTINGS:
            out = subprocess.run([sys.executable, __file__, "--child", setting, "--epochs",
                                  str(args.epochs)], check=True, capture_output=True, text=True)
            for name, seconds in json.loads(out.stdout.splitlines()[-1]).items():
                best[setting][name] = min(seconds, best[setting].get(name, float("inf")))
    print("| workload | deterministic | fast | deterministic / fast |")
    print("| --- | --- | --- | --- |")
    for name, det in best["deterministic"].items():
        fast = best["fast"][name]
        print(f"| {name} | {det:.2f} s | {fast:.2f} s | {det / fast:.2f}x |")


if __name__ == "__main__":
    main()
