"""Cost of portable numerics: the same work in portable and native mode, in one run.

    python benchmarks/bench_numerics.py [--repeats 3] [--tagger-batches 300]

Each measurement runs in a fresh process per mode (a mode is fixed before numeric libraries
load), alternating portable and native, ``--repeats`` times; the best time of each is kept
and the ratio portable / native printed. Measured: one autoencoder epoch on MNIST-test
(10k x 784, the paper profile's autoencoder), a BiLSTM-CNN-CRF training epoch on EWT train
(extrapolated from ``--tagger-batches`` batches) and its inference rate on EWT dev, and N2D
on digits (the golden job: UMAP's numba code cached, so this is run time, not compile time).
Data come from ../shared/data (MNIST-test, UD English-EWT).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

CHILD = r"""
import json, sys, time
from pipeline import config, numerics
cfg = config.load()
numerics.apply(sys.argv[1], cfg["threads"])
import numpy as np, torch
from pipeline.seeding import deterministic_torch, set_threads
set_threads(cfg["threads"]); deterministic_torch()
what, shared, batches = sys.argv[2], sys.argv[3], int(sys.argv[4])
out = {}
if what == "autoencoder":
    from pathlib import Path
    from pipeline.data.clustering import load_clustering_dataset
    from pipeline.train.clustering import pretrain_autoencoder
    entry = {"format": "idx", "images": "t10k-images-idx3-ubyte.gz",
             "labels": "t10k-labels-idx1-ubyte.gz"}
    x, _ = load_clustering_dataset("mnist", entry, Path(shared) / "mnist-test")
    hp = {**config.load(overlays=["configs/paper-mnist-test.yaml"])["clustering"]["autoencoder"],
          "epochs": 2, "layerwise_epochs": 0}
    seconds = []
    stamp = lambda metrics, step: seconds.append(time.perf_counter())
    pretrain_autoencoder(x, hp, 0, torch.device("cpu"), stamp)
    out["autoencoder epoch (s)"] = seconds[1] - seconds[0]
elif what == "tagger":
    from pipeline.data.conllu import read_conllu
    from pipeline.seeding import numpy_rng, seed_everything
    from pipeline.stages.tagging import hyperparameters
    from pipeline.train import tagging as T
    cfg = config.load(overlays=["configs/paper-tagging.yaml"])
    hp = hyperparameters(cfg, "ud_ewt", "bilstm_cnn_crf")
    train = read_conllu(f"{shared}/ud-ewt/en_ewt-ud-train.conllu.xz", "upos")
    dev = read_conllu(f"{shared}/ud-ewt/en_ewt-ud-dev.conllu.xz", "upos")
    seed_everything(0)
    bundle = T.rebuild(*T.build_vocab(train, hp), {k: hp[k] for k in T.MODEL_KEYS})
    data = T.encode(bundle, train, with_tags=True)
    order = T.bucketed(np.array([len(w) for w in data.words]), hp["batch_size"], numpy_rng(0, "b"))
    opt = torch.optim.SGD(bundle.model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    start = time.perf_counter()
    for rows in order[:batches]:
        loss = bundle.model.loss(T.make_batch(data, rows))
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    out["tagger epoch (s)"] = (time.perf_counter() - start) * len(order) / batches
    start = time.perf_counter()
    T.predict(bundle, dev, hp["eval_batch_size"])
    out["tagger inference (sent/s)"] = len(dev) / (time.perf_counter() - start)
elif what == "n2d":
    from pipeline import golden
    golden.autoencoder()
    start = time.perf_counter()
    golden.n2d()
    out["N2D on digits (s)"] = time.perf_counter() - start
print(json.dumps(out))
"""


def measure(mode: str, what: str, batches: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, what, str(SHARED), str(batches)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tagger-batches", type=int, default=300)
    args = ap.parse_args()
    from pipeline.numerics import cpu_flags

    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"CPU: {model} (avx512f: {'avx512f' in cpu_flags()}), best of {args.repeats}")
    print(f"{'measurement':30} {'portable':>10} {'native':>10} {'ratio':>7}")
    for what in ("autoencoder", "tagger", "n2d"):
        best: dict[str, dict[str, float]] = {"portable": {}, "native": {}}
        for _ in range(args.repeats):
            for mode in ("portable", "native"):
                for key, value in measure(mode, what, args.tagger_batches).items():
                    better = max if "/s" in key else min
                    best[mode][key] = better(best[mode].get(key, value), value)
        for key in best["portable"]:
            p, n = best["portable"][key], best["native"][key]
            ratio = n / p if "/s" in key else p / n  # > 1: portable is slower
            print(f"{key:30} {p:10.2f} {n:10.2f} {ratio:6.2f}x")


if __name__ == "__main__":
    main()
