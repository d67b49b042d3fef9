"""Tagger speed on UD English-EWT: seconds per training epoch (train) and sentences/s (dev).

    python benchmarks/bench_tagger.py --params params.yaml --overlay configs/paper-tagging.yaml

Uses the hp a pipeline job would get (``pipeline.stages.tagging.hyperparameters``) and the
trainer's own epoch function. Timing a fraction of an epoch (``--batches``) extrapolates to
the whole epoch by tokens. The last line is the floor under it all: the model's first
BiLSTM layer alone, forward and backward on one batch, in GFLOP/s.
"""

from __future__ import annotations

import argparse
import time

from pipeline.numerics import apply_configured

apply_configured()  # params.yaml's numeric mode, before numpy and torch load

import numpy as np
import torch

from pipeline import config
from pipeline.data.conllu import read_conllu
from pipeline.seeding import numpy_rng, seed_everything
from pipeline.stages.tagging import hyperparameters
from pipeline.train import tagging as T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True)
    ap.add_argument("--overlay")
    ap.add_argument("--corpus", default="ud_ewt")
    ap.add_argument("--variant", default="bilstm_cnn_crf")
    ap.add_argument("--batches", type=int, default=0, help="time this many batches (0: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the job's)")
    ap.add_argument("--profile", action="store_true",
                    help="also print torch.profiler's top operations of training and inference")
    args = ap.parse_args()

    cfg = config.load(args.params, overlays=[args.overlay] if args.overlay else [])
    hp = hyperparameters(cfg, args.corpus, args.variant)
    threads = args.threads or hp["threads"]
    corpus = cfg["tagging"]["corpora"][args.corpus]
    aux = corpus.get("aux", []) if hp["aux_weight"] else []
    train = read_conllu(corpus["train"], corpus["column"], aux)
    dev = read_conllu(corpus["dev"], corpus["column"])
    torch.set_num_threads(threads)
    seed_everything(0)
    bundle = T.rebuild(*T.build_vocab(train, hp), {k: hp[k] for k in T.MODEL_KEYS},
                       T.aux_vocab(train, hp))
    data = T.encode(bundle, train, with_tags=True)
    lengths = np.array([len(w) for w in data.words])
    batches = T.equal_length_batches(lengths, hp["batch_size"], numpy_rng(0, "bench"))
    timed = batches[:args.batches] if args.batches else batches
    optimizer = T.make_optimizer(bundle.model.parameters(), hp)
    singletons = T.singleton_mask(bundle, train)
    start = time.perf_counter()
    T.train_epoch(bundle.model, data, timed, optimizer, singletons, hp)
    # Extrapolated by tokens: batches vary in size and length.
    epoch = (time.perf_counter() - start) * lengths.sum() / sum(lengths[b].sum() for b in timed)
    start = time.perf_counter()
    T.predict(bundle, dev, hp["eval_batch_size"])
    rate = len(dev) / (time.perf_counter() - start)
    print(f"variant {args.variant}, batch {hp['batch_size']}, threads {threads}, "
          f"{len(train)} train sentences ({len(timed)}/{len(batches)} batches timed)")
    print(f"train epoch: {epoch:.1f} s")
    print(f"inference:   {rate:.0f} sentences/s on {len(dev)} dev sentences")
    print(f"LSTM kernel: {lstm_gflops(bundle.model.lstm, hp['batch_size']):.0f} GFLOP/s "
          f"(first BiLSTM layer, batch {hp['batch_size']} x 25 tokens, forward + backward)")
    if args.profile:
        from torch.profiler import profile

        with profile() as prof:
            T.train_epoch(bundle.model, data, batches[:50], optimizer, singletons, hp)
        print("training, 50 batches:\n" + prof.key_averages().table(
            sort_by="self_cpu_time_total", row_limit=25))
        with profile() as prof:
            T.predict(bundle, dev, hp["eval_batch_size"])
        print("inference, EWT dev:\n" + prof.key_averages().table(
            sort_by="self_cpu_time_total", row_limit=25))


def lstm_gflops(lstm: torch.nn.LSTM, batch: int, length: int = 25, repeat: int = 20) -> float:
    """Arithmetic rate of one bidirectional LSTM layer: 2 directions x 4 gates x
    (input + hidden) x hidden multiply-adds per token, forward plus twice that backward."""
    x = torch.randn(batch, length, lstm.input_size, requires_grad=True)
    lstm(x)[0].sum().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        lstm(x)[0].sum().backward()
    seconds = (time.perf_counter() - start) / repeat
    flops = 3 * 2 * 2 * 4 * (lstm.input_size + lstm.hidden_size) * lstm.hidden_size * batch * length
    return flops / seconds / 1e9


if __name__ == "__main__":
    main()
