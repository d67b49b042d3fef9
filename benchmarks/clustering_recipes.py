"""Pretraining recipe trials for the paper profile: AE + k-means along training (issue #14).

Runs the pipeline's own pretrain_autoencoder on the paper profile's data set with one
recipe's overrides and prints the monitoring curve (AE + k-means ACC/NMI every
``--every`` epochs, k-means n_init 20) plus the epoch time, as one JSON line:

    python benchmarks/clustering_recipes.py --recipe augment --seed 0 --epochs 200

The curve only describes the runs; no recipe reads it. Results: docs/clustering-mnist.md.
"""

from pipeline import numerics

numerics.apply_configured()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from pipeline.config import load  # noqa: E402
from pipeline.data.clustering import load_clustering_dataset  # noqa: E402
from pipeline.seeding import set_threads  # noqa: E402
from pipeline.train.clustering import pretrain_autoencoder  # noqa: E402

PROFILE = Path("configs/paper-mnist-test.yaml")

# Overrides of the profile's autoencoder settings, one per trial of issue #14 (the profile
# now pretrains with augmentation, so every other recipe switches it off).
RECIPES = {
    # (b) N2D's recipe: Adam 1e-3, constant learning rate.
    "adam": {"augment": None},
    # (c) denoising: dropout 0.2 on the pixels during end-to-end training.
    "dropout": {"input_dropout": 0.2, "augment": None},
    # (d) DEC-DA: random shifts (10 % of the size) and rotations (10 degrees).
    "augment": {"augment": {"rotation": 10, "shift": 0.1}},
    # (a) DEC's own code (piiswrong/dec): greedy layer-wise denoising, then fine-tuning;
    # SGD 0.1/0.9, lr x0.1 every 20k of 50k iterations per layer, N(0, 0.01^2) weights,
    # pixels x 0.02, half the squared error summed per sample. Epochs: --layerwise per layer,
    # --epochs fine-tuning; the lr step comes every 0.4 x --layerwise epochs (20k / 50k).
    "dec_layerwise": {
        "init": "normal",
        "init_scale": 0.01,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "input_scale": 5.1,
        "reconstruction": "mean",
        "layerwise_dropout": 0.2,
        "augment": None,
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--layerwise", type=int, default=50, help="dec_layerwise: epochs per layer")
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--device", default="cpu", help="cuda: a trial's curve in minutes, not bits")
    args = ap.parse_args()

    cfg = load(overlays=[str(PROFILE)])
    hp = dict(cfg["clustering"]["autoencoder"])
    hp.update(RECIPES[args.recipe], epochs=args.epochs)
    hp["monitor"] = {**hp["monitor"], "every": args.every}
    if args.recipe == "dec_layerwise":
        hp["layerwise_epochs"] = args.layerwise
        hp["lr_step"] = {"every": max(1, round(0.4 * args.layerwise)), "gamma": 0.1}
    entry = cfg["clustering"]["datasets"]["mnist_test"]
    x, y = load_clustering_dataset("mnist_test", entry, Path("."))
    side = int(round(x.shape[1] ** 0.5))
    set_threads(1)
    start, cpu0 = time.perf_counter(), time.process_time()
    _, history = pretrain_autoencoder(
        x, hp, args.seed, torch.device(args.device), lambda m, s: None, (side, side), y
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    result = {
        "recipe": args.recipe,
        "seed": args.seed,
        "epochs": args.epochs,
        "device": args.device,
        "layerwise_epochs": hp["layerwise_epochs"],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "curve": {
            int(e): (round(a, 4), round(n, 4))
            for e, a, n in zip(
                history["epoch"], history["ae_kmeans_acc"], history["ae_kmeans_nmi"], strict=True
            )
        },
        "final_loss": history["loss"][-1],
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
