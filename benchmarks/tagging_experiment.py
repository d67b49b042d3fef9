"""One tagger run on UD English-EWT: train on train minus a hash slice (early stopping),
report accuracy on dev. Writes a JSON record (hp, history, dev scores, timings).

    python benchmarks/tagging_experiment.py --params params.yaml \
        --overlay configs/paper-tagging.yaml --variant bilstm_cnn_crf --seed 1 --out run.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import yaml
from bench_tagger import holdout, load_config, tagger_hp

from pipeline.data.conllu import read_conllu
from pipeline.evaluate.tagging import tagging_metrics
from pipeline.io import write_json
from pipeline.train.tagging import predict, train_tagger


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True)
    ap.add_argument("--overlay")
    ap.add_argument("--corpus", default="ud_ewt")
    ap.add_argument("--variant", default="bilstm_cnn_crf")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--holdout", type=float, default=0.05, help="early-stopping share of train")
    ap.add_argument("--set", nargs="*", default=[], help="hp overrides key=yaml-value")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    tagging = load_config(args.params, args.overlay)
    hp = tagger_hp(tagging, args.variant, args.corpus)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in hp:
            raise KeyError(f"unknown hp key {key!r}")
        hp[key] = yaml.safe_load(value)
    corpus = tagging["corpora"][args.corpus]
    train, stop = holdout(read_conllu(corpus["train"], corpus["column"]), args.holdout)
    dev = read_conllu(corpus["dev"], corpus["column"])

    def log(metrics: dict[str, float], step: int) -> None:
        print(step, json.dumps({k: round(v, 5) for k, v in metrics.items()}), flush=True)

    start = time.perf_counter()
    bundle, history = train_tagger(train, stop, "tags", hp, args.seed, torch.device("cpu"), log)
    total = time.perf_counter() - start
    start = time.perf_counter()
    pred = predict(bundle, dev, hp["eval_batch_size"])
    rate = len(dev) / (time.perf_counter() - start)
    scores = tagging_metrics([s.tags for s in dev], pred, "tags")
    best = max(range(len(history["dev_score"])), key=history["dev_score"].__getitem__)
    record = {"variant": args.variant, "seed": args.seed, "hp": hp, "holdout": args.holdout,
              "n_train": len(train), "n_stop": len(stop), "dev_accuracy": scores["accuracy"],
              "best_epoch": best + 1, "epochs_run": len(history["epoch"]),
              "mean_epoch_seconds": sum(history["epoch_seconds"]) / len(history["epoch"]),
              "total_seconds": total, "inference_sentences_per_s": rate, "history": history}
    write_json(args.out, record)
    print(f"dev accuracy {scores['accuracy']:.4f} best epoch {best + 1}", flush=True)


if __name__ == "__main__":
    main()
