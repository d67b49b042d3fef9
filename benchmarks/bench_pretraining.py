"""Where an autoencoder epoch on MNIST-test goes, and what would make it faster (issue #14).

    python benchmarks/bench_pretraining.py [--epochs 3] [--compile]

One process, the configured numeric mode (portable by default), one thread, the paper
profile's autoencoder (784-500-500-2000-10, batch 256, Adam 1e-3) on the 10,000 MNIST-test
images. Printed, best of ``--epochs`` epochs each:

- the pipeline's epoch (``pretrain_autoencoder``, the code the DAG runs), with the
  profile's augmentation and without;
- the same steps with parts removed: GEMMs only (forward and backward matrix products of
  the same shapes), and forward + backward without the optimiser step;
- variants: Adam with ``fused=True``, and with ``--compile`` the model under
  ``torch.compile``; each with whether its weights after two epochs are byte-identical to
  the pipeline's (a faster variant that changes the bits is a different result).
"""

from pipeline import numerics

numerics.apply_configured()

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from pipeline.config import load  # noqa: E402
from pipeline.data.clustering import load_clustering_dataset  # noqa: E402
from pipeline.models.autoencoder import Autoencoder  # noqa: E402
from pipeline.seeding import deterministic_torch, seed_everything, set_threads  # noqa: E402
from pipeline.train.clustering import batches, pretrain_autoencoder  # noqa: E402

PROFILE = Path("configs/paper-mnist-test.yaml")


def timed_epochs(epoch_fn, epochs: int) -> float:
    best = float("inf")
    for _ in range(epochs):
        start = time.perf_counter()
        epoch_fn()
        best = min(best, time.perf_counter() - start)
    return best


def manual(x: torch.Tensor, hp: dict, *, step: bool, fused: bool, compiled: bool):
    """The pipeline's end-to-end loop, spelt out so parts can be switched."""
    generator = seed_everything(0)
    model = Autoencoder(x.shape[1], hp)
    forward = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"], fused=fused or None)
    order = batches(len(x), hp["batch_size"], generator)
    steps = -(-len(x) // hp["batch_size"])

    def epoch() -> None:
        for _ in range(steps):
            xb = x[next(order)]
            _, x_hat = forward(xb)
            loss = ((x_hat - xb) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if step:
                opt.step()

    return model, epoch


def gemm_only(x: torch.Tensor, hp: dict):
    """The forward and backward matrix products of one epoch, nothing else."""
    sizes = [x.shape[1], *hp["dims"]]
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    shapes += [(b, a) for a, b in reversed(shapes)]
    weights = [torch.randn(b, a) * 0.01 for a, b in shapes]
    batch = hp["batch_size"]
    steps = -(-len(x) // batch)

    def epoch() -> None:
        for _ in range(steps):
            h = x[:batch]
            outs = []
            for w in weights:
                outs.append(h)
                h = h @ w.t()
            g = torch.ones_like(h)
            for i, w in reversed(list(enumerate(weights))):
                _ = g.t() @ outs[i]  # weight gradient
                if i:
                    g = g @ w  # input gradient (not for the pixels)

    return epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    cfg = load(overlays=[str(PROFILE)])
    set_threads(1)
    deterministic_torch()
    hp = dict(cfg["clustering"]["autoencoder"])
    hp.update(layerwise_epochs=0, input_dropout=0.0)
    entry = cfg["clustering"]["datasets"]["mnist_test"]
    x_np, _ = load_clustering_dataset("mnist_test", entry, Path("."))
    x = torch.from_numpy(x_np)
    print(f"numerics {cfg['numerics']}, 1 thread, torch {torch.__version__}, "
          f"{x.shape[0]} x {x.shape[1]}, batch {hp['batch_size']}")

    def pipeline_epoch(augment) -> tuple[float, Autoencoder]:
        stamps = [time.perf_counter()]
        model, _ = pretrain_autoencoder(
            x_np, {**hp, "augment": augment, "epochs": args.epochs + 1}, 0, torch.device("cpu"),
            lambda m, s: stamps.append(time.perf_counter()), (28, 28),
        )
        return min(b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)), model

    profile_s, _ = pipeline_epoch(hp["augment"])
    pipeline_s, reference = pipeline_epoch(None)
    rows = [("pipeline epoch, the profile's recipe (augmented batches)", profile_s, "-"),
            ("pipeline epoch without augmentation", pipeline_s, "reference")]
    rows.append(("GEMMs only", timed_epochs(gemm_only(x, hp), args.epochs), "-"))
    _, no_step = manual(x, hp, step=False, fused=False, compiled=False)
    rows.append(("forward + backward, no optimiser step", timed_epochs(no_step, args.epochs), "-"))
    variants = {"Adam fused=True": {"fused": True, "compiled": False}}
    if args.compile:
        variants["torch.compile(model)"] = {"fused": False, "compiled": True}
    for name, flags in variants.items():
        model, epoch = manual(x, hp, step=True, **flags)
        seconds = timed_epochs(epoch, args.epochs + 1)  # same epoch count as the reference
        same = all(
            torch.equal(a, b)
            for a, b in zip(model.state_dict().values(), reference.state_dict().values(),
                            strict=True)
        )
        rows.append((name, seconds, "identical" if same else "different bits"))
    print("| epoch | seconds | x pipeline | weights vs pipeline |")
    print("|---|---|---|---|")
    for name, seconds, same in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / pipeline_s:.2f} | {same} |")


if __name__ == "__main__":
    main()
