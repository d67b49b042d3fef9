"""Tagger variant trials on UD English-EWT (issue #15): EWT dev UPOS per variant and seed.

Trains each named variant of ``tagging.variants`` with the tagging paper profile's settings
on the profile's POS corpus, exactly as the train_tagger stage would (same splits: early
stopping, when a variant uses it, on the stable-hash slice of train; scored on EWT dev),
and prints one JSON line per run:

    python benchmarks/tagger_recipes.py --variant deep --seed 1 [--device cuda]

A quick look across variants before the profile's 3-seed run through the pipeline; the
pipeline's report is the result. EWT test is never read.
"""

from pipeline import numerics

numerics.apply_configured()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from pipeline.config import load  # noqa: E402
from pipeline.evaluate.tagging import tagging_metrics  # noqa: E402
from pipeline.seeding import set_threads  # noqa: E402
from pipeline.stages.prepare import _read_corpus, split_corpus  # noqa: E402
from pipeline.stages.tagging import hyperparameters  # noqa: E402
from pipeline.train.tagging import predict, train_tagger  # noqa: E402

PROFILE = Path("configs/paper-tagging.yaml")
CORPUS = "ud_ewt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--device", default="cpu", help="cuda: a trial in minutes, not the CPU's bits")
    ap.add_argument("--limit", type=int, help="first N training sentences only (smoke test)")
    ap.add_argument("--out", type=Path, help="also write the JSON line here")
    args = ap.parse_args()

    cfg = load(overlays=[str(PROFILE)])
    given, _ = _read_corpus(cfg, CORPUS)  # as the prepare stage reads it
    split = cfg["tagging"]["split"]
    splits = split_corpus(given, split["dev"], split["test"])
    train = splits["train"][:args.limit] if args.limit else splits["train"]
    hp = hyperparameters(cfg, CORPUS, args.variant)
    set_threads(hp["threads"])
    start = time.perf_counter()
    bundle, history = train_tagger(train, splits["dev"], "tags", hp, args.seed,
                                   torch.device(args.device), lambda m, s: None)
    wall = time.perf_counter() - start
    test = splits["test"]
    scores = tagging_metrics([s.tags for s in test], predict(bundle, test, 256), "tags")
    line = json.dumps({
        "variant": args.variant, "seed": args.seed, "device": args.device,
        "train_sentences": len(train), "epochs": len(history["epoch"]),
        "ewt_dev_upos": round(100 * scores["accuracy"], 2), "wall_s": round(wall, 1),
        "epoch_s": round(min(history["epoch_seconds"]), 2),
    })
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
